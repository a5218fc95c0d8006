package routing

import (
	"context"
	"fmt"

	"github.com/poststelle/poststelle/eventstore"
	"github.com/poststelle/poststelle/gateway"
	"github.com/poststelle/poststelle/gateway/pipeline"
)

// Handler names; they name consumer groups and event ids and never change.
const (
	HandlerName         = "routing"
	VerifiedHandlerName = "routing-verified"
)

// HandlerConfig configures the routing handlers.
type HandlerConfig struct {
	Engine *Engine
	// Log, when set, lets the handler repeat its earlier decision for an
	// event delivered again (after a crash, or a replay after the rules
	// changed), instead of deciding anew and conflicting with the event id
	// it appended before. VerifiedHandler requires it.
	Log eventstore.Log
}

// Handler routes each MessageReceived to MessageRouted or RoutingFailed,
// taking the verification facts from the channel's metadata. Wire either
// Handler or VerifiedHandler, not both.
func Handler(cfg HandlerConfig) pipeline.Handler {
	return pipeline.Handler{Name: HandlerName, Topic: "MessageReceived",
		Handle: func(ctx context.Context, cause *eventstore.Event, p gateway.Payload) ([]gateway.Payload, error) {
			m, ok := p.(*gateway.MessageReceived)
			if !ok {
				return nil, fmt.Errorf("routing: got %T, want MessageReceived", p)
			}
			if prev, err := previous(ctx, cfg.Log, HandlerName, cause); err != nil || prev != nil {
				return prev, err
			}
			return decide(cfg.Engine, m, FactsFromMetadata(m.Metadata))
		}}
}

// VerifiedHandler routes once signatures are verified: it consumes
// SignaturesVerified, reads the message's MessageReceived from the log and
// decides with the verification facts, so that rules on the written form
// see the real result.
func VerifiedHandler(cfg HandlerConfig) pipeline.Handler {
	return pipeline.Handler{Name: VerifiedHandlerName, Topic: "SignaturesVerified",
		Handle: func(ctx context.Context, cause *eventstore.Event, p gateway.Payload) ([]gateway.Payload, error) {
			sv, ok := p.(*gateway.SignaturesVerified)
			if !ok {
				return nil, fmt.Errorf("routing: got %T, want SignaturesVerified", p)
			}
			if cfg.Log == nil {
				return nil, fmt.Errorf("routing: VerifiedHandler needs HandlerConfig.Log")
			}
			if prev, err := previous(ctx, cfg.Log, VerifiedHandlerName, cause); err != nil || prev != nil {
				return prev, err
			}
			evs, err := cfg.Log.ReadStream(ctx, cause.Tenant, cause.Stream)
			if err != nil {
				return nil, fmt.Errorf("routing: read stream %s: %w", cause.Stream, err)
			}
			reg := gateway.NewRegistry()
			for i := range evs {
				if evs[i].Type != "MessageReceived" {
					continue
				}
				rp, err := reg.Decode(&evs[i])
				if err != nil {
					return nil, fmt.Errorf("routing: %w", err)
				}
				m := rp.(*gateway.MessageReceived)
				return decide(cfg.Engine, m, FactsFromVerification(sv, m.Metadata))
			}
			return []gateway.Payload{&gateway.RoutingFailed{Reason: "verified stream has no MessageReceived",
				RulesVersion: cfg.Engine.Rules().Version}}, nil
		}}
}

func decide(e *Engine, m *gateway.MessageReceived, f Facts) ([]gateway.Payload, error) {
	set := e.Rules()
	if set == nil {
		return nil, ErrNoRules
	}
	return []gateway.Payload{set.Decide(NewInput(m, f)).Payload()}, nil
}

// previous returns the decision the handler appended for cause before, if
// any: its event id is fixed, so a new decision under changed rules would
// conflict with it.
func previous(ctx context.Context, log eventstore.Log, handler string, cause *eventstore.Event) ([]gateway.Payload, error) {
	if log == nil {
		return nil, nil
	}
	evs, err := log.ReadStream(ctx, cause.Tenant, cause.Stream)
	if err != nil {
		return nil, fmt.Errorf("routing: read stream %s: %w", cause.Stream, err)
	}
	id := gateway.DerivedEventID(handler, cause.ID, 0)
	for i := range evs {
		if evs[i].ID != id {
			continue
		}
		p, err := gateway.NewRegistry().Decode(&evs[i])
		if err != nil {
			return nil, fmt.Errorf("routing: earlier decision: %w", err)
		}
		return []gateway.Payload{p}, nil
	}
	return nil, nil
}

// CatchAll is the demo set-up's rule set: every message to one office. Its
// version is the SHA-256 of the equivalent rule file.
func CatchAll(office string) (*Set, error) {
	raw := fmt.Appendf(nil, "rules:\n  - id: demo-catch-all\n    description: demo set-up, every message goes to the office %q\n    offices: [%q]\n", office, office)
	s, err := Parse(raw, Options{})
	if err != nil {
		return nil, fmt.Errorf("routing: catch-all rules for %q: %w", office, err)
	}
	return s, nil
}
