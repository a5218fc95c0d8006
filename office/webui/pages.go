package webui

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/poststelle/poststelle/gateway/offices"
	"github.com/poststelle/poststelle/office/httpserve"
)

// hitsView feeds the "hits" template: a table of messages, live when it
// should grow as messages arrive.
type hitsView struct {
	Lang  string
	Hits  []Hit
	Live  bool
	Since int64
}

const chartDays = 14

func (s *Server) overview(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	ctx := r.Context()
	today := s.deps.Now().UTC().Truncate(24 * time.Hour)
	since := today.AddDate(0, 0, -(chartDays - 1))
	byChannel, err := perDay(ctx, s.deps.DB, false, since)
	if err != nil {
		s.internal(w, r, "overview", err)
		return
	}
	byOffice, err := perDay(ctx, s.deps.DB, true, since)
	if err != nil {
		s.internal(w, r, "overview", err)
		return
	}
	st, err := loadStats(ctx, s.deps.DB)
	if err != nil {
		s.internal(w, r, "overview", err)
		return
	}
	latest, err := LatestID(ctx, s.deps.DB)
	if err != nil {
		s.internal(w, r, "overview", err)
		return
	}
	hits, err := Search(ctx, s.deps.DB, ScopeOf(*r.p()), Query{Limit: 20})
	if err != nil {
		s.internal(w, r, "overview", err)
		return
	}
	s.render(w, r, http.StatusOK, "overview", map[string]any{
		"ByChannel": newBarChart("chart-channel", translate(r.lang, "overview.perchannel"), byChannel, today, chartDays),
		"ByOffice":  newBarChart("chart-office", translate(r.lang, "overview.peroffice"), byOffice, today, chartDays),
		"Stats":     st,
		"Integrity": s.integrity.get(),
		"Latest":    hitsView{Lang: r.lang, Hits: hits, Live: true, Since: latest},
	})
}

// triageEntry is an open triage item with what the mailroom decides on.
type triageEntry struct {
	offices.TriageItem
	CanRoute bool
}

func (s *Server) triage(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	ctx := r.Context()
	items, err := offices.ListTriage(ctx, s.deps.DB, 0, false, 500)
	if err != nil {
		s.internal(w, r, "triage", err)
		return
	}
	var entries []triageEntry
	for _, it := range items {
		// Only a routing or processing failure is decided by routing; the
		// others (a failed answer, webhook, stray evidence) are shown for
		// the mailroom to take another way.
		entries = append(entries, triageEntry{TriageItem: it, CanRoute: r.p().CanAssign() && (it.Kind == "routing" || it.Kind == "processing")})
	}
	var unverifiable []Hit
	for _, v := range []string{VerifyFailed, VerifyIndeterminate} {
		h, err := Search(ctx, s.deps.DB, Scope{All: true}, Query{Verification: v, Limit: 100})
		if err != nil {
			s.internal(w, r, "triage", err)
			return
		}
		unverifiable = append(unverifiable, h...)
	}
	if r.p().Role == offices.RoleMailroom {
		// The mailroom sees the subject lines of messages it may open only.
		unverifiable = slices.DeleteFunc(unverifiable, func(h Hit) bool { return h.Status != StatusTriage })
	}
	s.render(w, r, http.StatusOK, "triage", map[string]any{
		"Items": entries, "Offices": s.deps.Directory.Config().Offices,
		"Unverifiable": hitsView{Lang: r.lang, Hits: unverifiable},
		"Key":          randomToken(),
	})
}

func (s *Server) search(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	in := r.URL.Query()
	q := Query{Text: in.Get("q"), Sender: in.Get("sender"), Subject: in.Get("subject"), FileNumber: in.Get("file"),
		Channel: in.Get("channel"), Office: in.Get("office"), Status: in.Get("status"), Verification: in.Get("verification"), Limit: 100}
	var bad bool
	for _, f := range []struct {
		name string
		t    *time.Time
		add  int
	}{{"from", &q.From, 0}, {"to", &q.To, 1}} {
		if v := in.Get(f.name); v != "" {
			d, err := time.ParseInLocation("2006-01-02", v, time.Local)
			if err != nil {
				bad = true
				continue
			}
			*f.t = d.AddDate(0, 0, f.add)
		}
	}
	if q.Status != "" && !slices.Contains(Statuses, q.Status) || q.Verification != "" && !slices.Contains(Verifications, q.Verification) {
		bad = true
	}
	var hits []Hit
	searched := len(in) > 0 && !bad
	if searched {
		var err error
		if hits, err = Search(r.Context(), s.deps.DB, ScopeOf(*r.p()), q); err != nil {
			s.internal(w, r, "search", err)
			return
		}
	}
	var officeIDs []string
	for _, o := range s.deps.Directory.Config().Offices {
		if r.p().CanRead(o.ID) || r.p().Role == offices.RoleMailroom {
			officeIDs = append(officeIDs, o.ID)
		}
	}
	s.render(w, r, http.StatusOK, "search", map[string]any{
		"Q": in, "Bad": bad, "Searched": searched, "Results": hitsView{Lang: r.lang, Hits: hits},
		"Channels": s.channels(), "Offices": officeIDs, "Statuses": Statuses, "Verifications": Verifications,
	})
}

// channels lists the channels messages came in on.
func (s *Server) channels() []string {
	var out []string
	rows, err := s.deps.DB.Query(`SELECT DISTINCT channel FROM ui_messages WHERE channel != '' ORDER BY channel`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		if rows.Scan(&c) == nil {
			out = append(out, c)
		}
	}
	return out
}

func (s *Server) officeList(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	var list []offices.Office
	for _, o := range s.deps.Directory.Config().Offices {
		if r.p().CanRead(o.ID) {
			list = append(list, offices.Office{ID: o.ID, Name: o.Name})
		}
	}
	s.render(w, r, http.StatusOK, "offices", map[string]any{"Offices": list})
}

// officeView is an office's queue, newest first, with its read state.
func (s *Server) officeView(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	id := r.PathValue("office")
	o, ok := s.deps.Directory.Office(id)
	if !r.p().CanRead(id) {
		s.fail(w, r, http.StatusForbidden, "error.forbidden")
		return
	}
	if !ok {
		s.fail(w, r, http.StatusNotFound, "error.notfound")
		return
	}
	ctx := r.Context()
	last, err := offices.LatestSeq(ctx, s.deps.DB, id)
	if err != nil {
		s.internal(w, r, "office view", err)
		return
	}
	msgs, err := offices.ListInboxPage(ctx, s.deps.DB, offices.Query{Office: id, Since: max(0, last-200), Limit: 200})
	if err != nil {
		s.internal(w, r, "office view", err)
		return
	}
	slices.Reverse(msgs)
	latest, err := LatestID(ctx, s.deps.DB)
	if err != nil {
		s.internal(w, r, "office view", err)
		return
	}
	// The office's eEB work list: what courts wait for, most urgent first.
	eeb, err := offices.ListInboxPage(ctx, s.deps.DB, offices.Query{Office: id, EEB: offices.EEBFilterOpen, Limit: 200})
	if err != nil {
		s.internal(w, r, "office view", err)
		return
	}
	s.render(w, r, http.StatusOK, "office", map[string]any{"Office": o, "Messages": msgs, "Since": latest, "CanAct": r.p().CanAct(id), "EEB": eeb})
}

func (s *Server) audit(w http.ResponseWriter, r *request) {
	httpserve.SetWriteDeadline(w, answerTimeout)
	ctx := r.Context()
	type cp struct {
		Partition int32
		Size      int64
		Root      string
		At        time.Time
	}
	var cps []cp
	if s.deps.Audited != nil {
		parts, err := s.deps.Audited.Partitions(ctx)
		if err != nil {
			s.internal(w, r, "audit", err)
			return
		}
		for p := range parts {
			list, err := s.deps.Audited.Checkpoints(ctx, p)
			if err != nil {
				s.internal(w, r, "audit", err)
				return
			}
			if len(list) > 0 {
				c := list[len(list)-1]
				cps = append(cps, cp{Partition: p, Size: c.Size, Root: hexString(c.Root[:]), At: c.Time})
			}
		}
	}
	head, err := lastHead(ctx, s.deps.DB)
	if err != nil {
		s.internal(w, r, "audit", err)
		return
	}
	hits, err := Search(ctx, s.deps.DB, Scope{All: true}, Query{Limit: 50})
	if err != nil {
		s.internal(w, r, "audit", err)
		return
	}
	s.render(w, r, http.StatusOK, "audit", map[string]any{"Integrity": s.integrity.get(), "Checkpoints": cps, "Head": head,
		"Latest": hitsView{Lang: r.lang, Hits: hits}})
}

// visible reports whether the principal may open a message: admins and
// auditors every one, office members those of their offices, the mailroom
// those that were in triage.
func (s *Server) visible(r *request, stream string) (Hit, bool, error) {
	h, ok, err := HitByStream(r.Context(), s.deps.DB, stream)
	if err != nil || !ok {
		return h, false, err
	}
	p := r.p()
	switch p.Role {
	case offices.RoleAdmin, offices.RoleAuditor:
		return h, true, nil
	case offices.RoleOffice:
		return h, slices.ContainsFunc(h.Offices, p.Member), nil
	case offices.RoleMailroom:
		_, err := offices.GetTriage(r.Context(), s.deps.DB, stream)
		if errors.Is(err, offices.ErrNotFound) {
			return h, false, nil
		}
		return h, err == nil, err
	}
	return h, false, nil
}

// actingOffice is the office a member acts for on a message: the one the
// form names, if the member belongs to it and the message is in it.
func actingOffice(p *offices.Principal, h Hit, asked string) (string, bool) {
	if asked == "" {
		for _, o := range h.Offices {
			if p.CanAct(o) {
				return o, true
			}
		}
		return "", false
	}
	return asked, p.CanAct(asked) && slices.Contains(h.Offices, asked)
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte(digits[c>>4])
		sb.WriteByte(digits[c&15])
	}
	return sb.String()
}
