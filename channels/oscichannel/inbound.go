package oscichannel

import (
	"context"
	"errors"
	"sync"

	"github.com/poststelle/poststelle/gateway"
)

// New builds the inbound side of cfg: the active recipient when poll_interval is set,
// the passive recipient when passive is, both when both are; nil when neither is.
func New(cfg Config, deps gateway.IntakeDeps) (gateway.Inbound, error) {
	var roles []gateway.Inbound
	if cfg.PollInterval > 0 {
		a, err := NewActive(cfg, deps)
		if err != nil {
			return nil, err
		}
		roles = append(roles, a)
	}
	if cfg.Passive != nil {
		p, err := NewPassive(cfg, deps)
		if err != nil {
			return nil, err
		}
		roles = append(roles, p)
	}
	switch len(roles) {
	case 0:
		return nil, nil
	case 1:
		return roles[0], nil
	}
	return both(roles), nil
}

// both runs the roles together; the first that cannot go on stops the others.
type both []gateway.Inbound

func (b both) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(b))
	var wg sync.WaitGroup
	for i, r := range b {
		wg.Go(func() {
			errs[i] = r.Run(ctx)
			cancel()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
