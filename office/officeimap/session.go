package officeimap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/poststelle/poststelle/eventstore/blob"
	"github.com/poststelle/poststelle/gateway/offices"
)

// opTimeout bounds one command's database and blob work.
const opTimeout = time.Minute

var (
	errReadOnly   = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "this mailbox is read-only for you"}
	errEvidence   = &imap.Error{Type: imap.StatusResponseTypeNo, Text: "received messages are evidence: they cannot be deleted, moved or changed"}
	errOnlySeen   = &imap.Error{Type: imap.StatusResponseTypeNo, Text: `only \Seen (acknowledged) is kept here; $EEB is the gateway's and goes when the eEB is answered`}
	errNoMailbox  = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeNonExistent, Text: "no such mailbox"}
	errErased     = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "the content was erased at the end of its retention period"}
	errFixedBoxes = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "the office mailboxes are fixed"}
)

type session struct {
	srv  *Server
	conn *imapserver.Conn
	ctx  context.Context
	p    *offices.Principal
	sel  *mailbox
	// last caches the most recently rendered copy: clients fetch a
	// message's structure and parts in several commands.
	last struct {
		stream string
		data   []byte
	}
}

// mailbox is the selected office queue as this session last told the client.
type mailbox struct {
	office   string
	readOnly bool
	msgs     []offices.Message
	// told holds each message's flags as the client was last told them
	// (flagKey), so that Poll reports what changed.
	told []string
	// acked holds streams this session acknowledged before the read model
	// caught up with the event.
	acked map[string]bool
}

func (s *session) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, opTimeout)
}

// Close implements imapserver.Session.
func (s *session) Close() error { return nil }

// Login implements imapserver.Session.
func (s *session) Login(username, password string) error {
	ctx, cancel := s.op()
	defer cancel()
	p, err := s.srv.deps.Directory.Authenticate(ctx, username, password)
	if err != nil {
		s.srv.deps.Logger.Warn("office IMAP login failed", "user", username, "remote", s.remote())
		return imapserver.ErrAuthFailed
	}
	s.p = &p
	s.srv.deps.Logger.Info("office IMAP login", "user", p.User, "role", p.Role, "remote", s.remote())
	return nil
}

func (s *session) remote() string {
	if nc := s.conn.NetConn(); nc != nil {
		return nc.RemoteAddr().String()
	}
	return ""
}

// readable lists the offices the principal sees; the first is INBOX.
func (s *session) readable() []string {
	if s.p == nil {
		return nil
	}
	var out []string
	switch s.p.Role {
	case offices.RoleOffice:
		out = slices.Clone(s.p.Offices)
	case offices.RoleAdmin, offices.RoleAuditor:
		cfg := s.srv.deps.Directory.Config()
		out = cfg.OfficeIDs()
	}
	return slices.DeleteFunc(out, func(o string) bool { return !s.p.CanRead(o) })
}

// names maps mailbox names to offices: INBOX is the first office, the
// others appear under their ids.
func (s *session) names() map[string]string {
	offs := s.readable()
	m := map[string]string{"INBOX": ""}
	for i, o := range offs {
		if i == 0 {
			m["INBOX"] = o
			continue
		}
		m[o] = o
	}
	return m
}

func (s *session) resolve(name string) (office string, err error) {
	if strings.EqualFold(name, "INBOX") {
		name = "INBOX"
	}
	o, ok := s.names()[name]
	if !ok {
		return "", errNoMailbox
	}
	return o, nil
}

// UIDValidity is the UIDVALIDITY of an office's mailbox: fixed per office,
// since UIDs are the queue's sequence numbers, which replay reproduces.
func UIDValidity(office string) uint32 {
	h := fnv.New32a()
	h.Write([]byte("poststelle-office/" + office))
	return h.Sum32() | 1
}

func (s *session) load(office string) ([]offices.Message, error) {
	if office == "" {
		return nil, nil
	}
	ctx, cancel := s.op()
	defer cancel()
	msgs, err := offices.ListInbox(ctx, s.srv.deps.State, office, 0)
	if err != nil {
		return nil, fmt.Errorf("officeimap: list %s: %w", office, err)
	}
	return msgs, nil
}

// Select implements imapserver.Session.
func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	office, err := s.resolve(name)
	if err != nil {
		return nil, err
	}
	msgs, err := s.load(office)
	if err != nil {
		return nil, err
	}
	mb := &mailbox{office: office, msgs: msgs, acked: map[string]bool{},
		readOnly: options.ReadOnly || office == "" || !s.p.CanAct(office)}
	mb.told = make([]string, len(msgs))
	var firstUnseen uint32
	for i := range msgs {
		mb.told[i] = mb.flagKey(i)
		if !mb.isSeen(i) && firstUnseen == 0 {
			firstUnseen = uint32(i + 1)
		}
	}
	s.sel = mb
	data := &imap.SelectData{Flags: []imap.Flag{imap.FlagSeen, FlagEEB}, NumMessages: uint32(len(msgs)),
		FirstUnseenSeqNum: firstUnseen, UIDNext: mb.uidNext(), UIDValidity: UIDValidity(office)}
	if !mb.readOnly {
		data.PermanentFlags = []imap.Flag{imap.FlagSeen}
	}
	return data, nil
}

func (mb *mailbox) isSeen(i int) bool {
	return mb.msgs[i].State == offices.StateAcknowledged || mb.acked[mb.msgs[i].Stream]
}

// FlagEEB is the keyword of a message whose court asked for an eEB that
// awaits the office's decision (offices.EEBTask.AwaitsDecision): it goes
// when the office answers, and comes back if the answer fails for good. It
// is the gateway's: a client can neither set nor clear it.
const FlagEEB imap.Flag = "$EEB"

func (mb *mailbox) flags(i int) []imap.Flag {
	out := []imap.Flag{}
	if mb.isSeen(i) {
		out = append(out, imap.FlagSeen)
	}
	if mb.msgs[i].EEB.AwaitsDecision() {
		out = append(out, FlagEEB)
	}
	return out
}

// flagKey is message i's flags as one comparable value.
func (mb *mailbox) flagKey(i int) string {
	var b strings.Builder
	for _, f := range mb.flags(i) {
		b.WriteString(string(f) + " ")
	}
	return b.String()
}

func (mb *mailbox) uidNext() imap.UID {
	if len(mb.msgs) == 0 {
		return 1
	}
	return imap.UID(mb.msgs[len(mb.msgs)-1].Seq + 1)
}

// Unselect implements imapserver.Session.
func (s *session) Unselect() error {
	s.sel = nil
	return nil
}

// Create implements imapserver.Session.
func (s *session) Create(string, *imap.CreateOptions) error { return errFixedBoxes }

// Delete implements imapserver.Session.
func (s *session) Delete(string) error { return errFixedBoxes }

// Rename implements imapserver.Session.
func (s *session) Rename(string, string, *imap.RenameOptions) error { return errFixedBoxes }

// Subscribe implements imapserver.Session; every mailbox counts as subscribed.
func (s *session) Subscribe(string) error { return nil }

// Unsubscribe implements imapserver.Session.
func (s *session) Unsubscribe(string) error { return nil }

// Append implements imapserver.Session.
func (s *session) Append(string, imap.LiteralReader, *imap.AppendOptions) (*imap.AppendData, error) {
	return nil, errEvidence
}

// Copy implements imapserver.Session.
func (s *session) Copy(imap.NumSet, string) (*imap.CopyData, error) { return nil, errEvidence }

// Expunge implements imapserver.Session: nothing is ever marked \Deleted,
// so nothing goes.
func (s *session) Expunge(*imapserver.ExpungeWriter, *imap.UIDSet) error { return nil }

// List implements imapserver.Session.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 || (len(patterns) == 1 && patterns[0] == "") {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: '/', Mailbox: ""})
	}
	names := make([]string, 0)
	for n := range s.names() {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		for _, pat := range patterns {
			if imapserver.MatchList(n, '/', ref, pat) {
				if err := w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrHasNoChildren}, Delim: '/', Mailbox: n}); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

// Status implements imapserver.Session.
func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	office, err := s.resolve(name)
	if err != nil {
		return nil, err
	}
	msgs, err := s.load(office)
	if err != nil {
		return nil, err
	}
	mb := &mailbox{office: office, msgs: msgs}
	n, unseen, size := uint32(len(msgs)), uint32(0), int64(0)
	for i := range msgs {
		if !mb.isSeen(i) {
			unseen++
		}
		if options.Size {
			size += renderCopy(msgs[i], s.srv.cfg.MaxInlineBytes).size()
		}
	}
	data := &imap.StatusData{Mailbox: name, UIDNext: mb.uidNext(), UIDValidity: UIDValidity(office)}
	if options.NumMessages {
		data.NumMessages = &n
	}
	if options.NumUnseen {
		data.NumUnseen = &unseen
	}
	if options.Size {
		data.Size = &size
	}
	return data, nil
}

// Poll implements imapserver.Session: new messages and acknowledgements
// made elsewhere (the API, another member) reach the client.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	mb := s.sel
	if mb == nil {
		return nil
	}
	msgs, err := s.load(mb.office)
	if err != nil {
		return err
	}
	if len(msgs) < len(mb.msgs) {
		// The read model is being rebuilt; keep the client's view until
		// it has caught up again (messages never disappear).
		return nil
	}
	grew := len(msgs) > len(mb.msgs)
	mb.msgs = msgs
	for i := range msgs {
		if i >= len(mb.told) {
			mb.told = append(mb.told, mb.flagKey(i))
			continue
		}
		if now := mb.flagKey(i); now != mb.told[i] {
			mb.told[i] = now
			if err := w.WriteMessageFlags(uint32(i+1), imap.UID(msgs[i].Seq), mb.flags(i)); err != nil {
				return err
			}
		}
	}
	if grew {
		return w.WriteNumMessages(uint32(len(msgs)))
	}
	return nil
}

// Idle implements imapserver.Session.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	t := time.NewTicker(s.srv.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := s.Poll(w, true); err != nil {
			return err
		}
		var changed <-chan struct{}
		if s.srv.deps.Changed != nil {
			changed = s.srv.deps.Changed()
		}
		select {
		case <-stop:
			return nil
		case <-t.C:
		case <-changed:
		}
	}
}

// indexes resolves a sequence or UID set to positions in the mailbox.
func (mb *mailbox) indexes(set imap.NumSet) []int {
	var out []int
	switch set := set.(type) {
	case imap.SeqSet:
		n := uint32(len(mb.msgs))
		for _, r := range set {
			lo, hi := r.Start, r.Stop
			if lo == 0 {
				lo = n
			}
			if hi == 0 {
				hi = n
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			for i := max(lo, 1); i <= min(hi, n); i++ {
				out = append(out, int(i-1))
			}
		}
	case imap.UIDSet:
		if len(mb.msgs) == 0 {
			return nil
		}
		maxUID := imap.UID(mb.msgs[len(mb.msgs)-1].Seq)
		for _, r := range set {
			lo, hi := r.Start, r.Stop
			if lo == 0 {
				lo = maxUID
			}
			if hi == 0 {
				hi = maxUID
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			for i, m := range mb.msgs {
				if u := imap.UID(m.Seq); u >= lo && u <= hi {
					out = append(out, i)
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// content renders the office copy of message i with the original inside.
func (s *session) content(m offices.Message) ([]byte, *officeCopy, error) {
	c := renderCopy(m, s.srv.cfg.MaxInlineBytes)
	if s.last.stream == m.Stream && s.last.data != nil {
		return s.last.data, c, nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, c.size()))
	buf.Write(c.prefix)
	if c.inline {
		ctx, cancel := s.op()
		defer cancel()
		rc, err := s.srv.deps.Blobs.Open(ctx, m.Raw)
		if err != nil {
			return nil, nil, fmt.Errorf("officeimap: open original of %s: %w", m.Stream, err)
		}
		defer rc.Close()
		if _, err := io.Copy(buf, io.LimitReader(rc, m.Raw.Size+1)); err != nil {
			return nil, nil, fmt.Errorf("officeimap: read original of %s: %w", m.Stream, err)
		}
		buf.Write(c.suffix)
	}
	if int64(buf.Len()) != c.size() {
		return nil, nil, fmt.Errorf("officeimap: original of %s has %d bytes, recorded %d", m.Stream, buf.Len(), c.size())
	}
	s.last.stream, s.last.data = m.Stream, buf.Bytes()
	return buf.Bytes(), c, nil
}

// Fetch implements imapserver.Session.
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	mb := s.sel
	for _, i := range mb.indexes(numSet) {
		if err := s.fetchOne(w, mb, i, options); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) fetchOne(w *imapserver.FetchWriter, mb *mailbox, i int, options *imap.FetchOptions) error {
	m := mb.msgs[i]
	needBody := options.BodyStructure != nil || len(options.BodySection) > 0 || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
	var data []byte
	c := renderCopy(m, s.srv.cfg.MaxInlineBytes)
	if needBody {
		var err error
		if data, c, err = s.content(m); err != nil {
			if errors.Is(err, blob.ErrErased) {
				// RFC 5530 UNAVAILABLE: not a fault of the server, and
				// retrying will not help; the client keeps the headers it
				// has.
				return errErased
			}
			s.srv.deps.Logger.Error("office IMAP fetch failed", "office", mb.office, "stream", m.Stream, "err", err)
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "the message cannot be read now"}
		}
	}
	read := false
	for _, sec := range options.BodySection {
		read = read || !sec.Peek
	}
	for _, sec := range options.BinarySection {
		read = read || !sec.Peek
	}
	if read && !mb.readOnly && !mb.isSeen(i) {
		if err := s.acknowledge(mb, i); err != nil {
			return err
		}
	}
	rw := w.CreateMessage(uint32(i + 1))
	if options.UID {
		rw.WriteUID(imap.UID(m.Seq))
	}
	if options.Flags || read {
		rw.WriteFlags(mb.flags(i))
		mb.told[i] = mb.flagKey(i)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(c.size())
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.ReceivedAt)
	}
	if options.Envelope {
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(c.prefix)))
		if err == nil {
			rw.WriteEnvelope(imapserver.ExtractEnvelope(h))
		}
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(data)))
	}
	for _, sec := range options.BodySection {
		part := imapserver.ExtractBodySection(bytes.NewReader(data), sec)
		wc := rw.WriteBodySection(sec, int64(len(part)))
		wc.Write(part)
		if err := wc.Close(); err != nil {
			return err
		}
	}
	for _, sec := range options.BinarySection {
		part := imapserver.ExtractBinarySection(bytes.NewReader(data), sec)
		wc := rw.WriteBinarySection(sec, int64(len(part)))
		wc.Write(part)
		if err := wc.Close(); err != nil {
			return err
		}
	}
	for _, sec := range options.BinarySectionSize {
		rw.WriteBinarySectionSize(sec, imapserver.ExtractBinarySectionSize(bytes.NewReader(data), sec))
	}
	return rw.Close()
}

// acknowledge records that the office took message i into its care.
func (s *session) acknowledge(mb *mailbox, i int) error {
	m := mb.msgs[i]
	ctx, cancel := s.op()
	defer cancel()
	if _, err := offices.Acknowledge(ctx, s.srv.deps.Log, m.Tenant, m.Stream, mb.office, s.p.User, "imap"); err != nil {
		s.srv.deps.Logger.Error("office IMAP acknowledgement failed", "office", mb.office, "stream", m.Stream, "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "acknowledgement could not be recorded; try again"}
	}
	mb.acked[m.Stream] = true
	return nil
}

// Store implements imapserver.Session. Adding \Seen acknowledges; removing
// it changes nothing (an acknowledgement stands); $EEB is left as the eEB
// task has it; other flags are refused.
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	mb := s.sel
	setSeen := false
	if flags.Op != imap.StoreFlagsDel {
		for _, f := range flags.Flags {
			switch {
			case strings.EqualFold(string(f), string(imap.FlagSeen)):
				setSeen = true
			case strings.EqualFold(string(f), string(imap.FlagDeleted)):
				return errEvidence
			case strings.EqualFold(string(f), string(FlagEEB)):
				// The gateway's own keyword: naming it changes nothing,
				// so that a client that stores the flags it was shown
				// does not fail.
			default:
				return errOnlySeen
			}
		}
	}
	if mb.readOnly && (setSeen || flags.Op != imap.StoreFlagsDel) {
		return errReadOnly
	}
	_, byUID := numSet.(imap.UIDSet)
	for _, i := range mb.indexes(numSet) {
		if setSeen && !mb.isSeen(i) {
			if err := s.acknowledge(mb, i); err != nil {
				return err
			}
		}
		mb.told[i] = mb.flagKey(i)
		if flags.Silent {
			continue
		}
		rw := w.CreateMessage(uint32(i + 1))
		if byUID {
			rw.WriteUID(imap.UID(mb.msgs[i].Seq))
		}
		rw.WriteFlags(mb.flags(i))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Search implements imapserver.Session.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	mb := s.sel
	var seqs []uint32
	var uids []imap.UID
	for i := range mb.msgs {
		ok, err := s.matches(mb, i, criteria)
		if err != nil {
			return nil, err
		}
		if ok {
			seqs = append(seqs, uint32(i+1))
			uids = append(uids, imap.UID(mb.msgs[i].Seq))
		}
	}
	data := &imap.SearchData{Count: uint32(len(seqs))}
	if kind == imapserver.NumKindUID {
		data.All = imap.UIDSetNum(uids...)
		if len(uids) > 0 {
			data.Min, data.Max = uint32(uids[0]), uint32(uids[len(uids)-1])
		}
	} else {
		data.All = imap.SeqSetNum(seqs...)
		if len(seqs) > 0 {
			data.Min, data.Max = seqs[0], seqs[len(seqs)-1]
		}
	}
	return data, nil
}

func (s *session) matches(mb *mailbox, i int, c *imap.SearchCriteria) (bool, error) {
	m := mb.msgs[i]
	for _, set := range c.SeqNum {
		if !slices.Contains(mb.indexes(set), i) {
			return false, nil
		}
	}
	for _, set := range c.UID {
		if !slices.Contains(mb.indexes(set), i) {
			return false, nil
		}
	}
	day := func(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC) }
	if !c.Since.IsZero() && day(m.ReceivedAt).Before(day(c.Since)) {
		return false, nil
	}
	if !c.Before.IsZero() && !day(m.ReceivedAt).Before(day(c.Before)) {
		return false, nil
	}
	if !c.SentSince.IsZero() && day(copyDate(m)).Before(day(c.SentSince)) {
		return false, nil
	}
	if !c.SentBefore.IsZero() && !day(copyDate(m)).Before(day(c.SentBefore)) {
		return false, nil
	}
	for _, f := range c.Flag {
		if !hasFlag(mb.flags(i), f) {
			return false, nil
		}
	}
	for _, f := range c.NotFlag {
		if hasFlag(mb.flags(i), f) {
			return false, nil
		}
	}
	cp := renderCopy(m, s.srv.cfg.MaxInlineBytes)
	if c.Larger > 0 && cp.size() <= c.Larger {
		return false, nil
	}
	if c.Smaller > 0 && cp.size() >= c.Smaller {
		return false, nil
	}
	if len(c.Header) > 0 {
		h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(cp.prefix)))
		if err != nil {
			return false, nil
		}
		for _, hf := range c.Header {
			if !headerContains(h, hf.Key, hf.Value) {
				return false, nil
			}
		}
	}
	if len(c.Body) > 0 || len(c.Text) > 0 {
		data, _, err := s.content(m)
		if errors.Is(err, blob.ErrErased) {
			// An erased message matches no text: its text is gone.
			return false, nil
		}
		if err != nil {
			return false, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "a message cannot be read now"}
		}
		lower := bytes.ToLower(data)
		for _, t := range append(slices.Clone(c.Body), c.Text...) {
			if !bytes.Contains(lower, bytes.ToLower([]byte(t))) {
				return false, nil
			}
		}
	}
	for j := range c.Not {
		ok, err := s.matches(mb, i, &c.Not[j])
		if err != nil || ok {
			return false, err
		}
	}
	for j := range c.Or {
		a, err := s.matches(mb, i, &c.Or[j][0])
		if err != nil {
			return false, err
		}
		b, err := s.matches(mb, i, &c.Or[j][1])
		if err != nil {
			return false, err
		}
		if !a && !b {
			return false, nil
		}
	}
	return true, nil
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	return slices.ContainsFunc(flags, func(g imap.Flag) bool { return strings.EqualFold(string(g), string(f)) })
}

func headerContains(h textproto.Header, key, value string) bool {
	for _, v := range h.Values(key) {
		if value == "" || strings.Contains(strings.ToLower(v), strings.ToLower(value)) {
			return true
		}
	}
	return false
}

var _ imapserver.Session = (*session)(nil)
