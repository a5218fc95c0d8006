// Package capture is a recording HTTP endpoint on 127.0.0.1 for the OSCI
// interop tests: it keeps every request the OSCI-Bibliothek sends (as it came
// over the wire) and answers each with what a Responder decides, by default a
// SOAP fault the library can parse. It stands where an intermediary or a
// passive recipient would, before the stand-in intermediary exists, so that
// real library messages can be recorded and checked.
package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// Request is one recorded request.
type Request struct {
	Method string
	Path   string
	Header http.Header
	// Body is the request body as received, up to the server's cap.
	Body []byte
	// Wire is the request as text (request line, headers, body), the form
	// the golden captures are stored in.
	Wire []byte
}

// Response is what the server answers.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Responder decides the answer to the n-th request (from 0).
type Responder func(n int, r Request) Response

// Config configures a Server.
type Config struct {
	// MaxBody caps a request body; larger requests are refused with 413
	// and not recorded. Zero means 64 MiB.
	MaxBody int64
	// Respond answers each request; nil answers every request with
	// Fault(DefaultFaultCode).
	Respond Responder
	Logger  *slog.Logger
}

// DefaultFaultCode is the OSCI code of the default answer: 9000, the
// supplier's internal error, a SOAP server fault. It says truthfully that the
// request was not processed, and the library reports it as such instead of
// failing on an answer it cannot read.
const DefaultFaultCode = "9000"

// Server records requests. Its zero value is not usable; call Start.
type Server struct {
	cfg  Config
	ln   net.Listener
	srv  *http.Server
	done chan struct{}

	mu   sync.Mutex
	reqs []Request
}

// Start listens on 127.0.0.1 (a free port) and serves until ctx ends or
// Close is called.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 20
	}
	if cfg.Respond == nil {
		cfg.Respond = func(int, Request) Response { return Fault(DefaultFaultCode) }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("capture: listening: %w", err)
	}
	s := &Server{cfg: cfg, ln: ln, done: make(chan struct{})}
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serve),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("capture: serving", "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.done:
		}
	}()
	return s, nil
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/" }

// Requests returns a copy of the requests recorded so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.reqs...)
}

// Close stops the server and waits for it.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	if err != nil {
		return fmt.Errorf("capture: shutting down: %w", err)
	}
	return nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxBody+1))
	if err != nil {
		s.cfg.Logger.Warn("capture: reading request", "err", err)
		http.Error(w, "reading request failed", http.StatusBadRequest)
		return
	}
	if int64(len(body)) > s.cfg.MaxBody {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	wire, err := httputil.DumpRequest(r, true)
	if err != nil {
		http.Error(w, "recording request failed", http.StatusInternalServerError)
		return
	}
	rec := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Wire: wire}
	s.mu.Lock()
	n := len(s.reqs)
	s.reqs = append(s.reqs, rec)
	s.mu.Unlock()
	s.cfg.Logger.Info("capture: request", "n", n, "bytes", len(body))

	resp := s.cfg.Respond(n, rec)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	if resp.Status == 0 {
		resp.Status = http.StatusOK
	}
	w.WriteHeader(resp.Status)
	if _, err := w.Write(resp.Body); err != nil {
		s.cfg.Logger.Warn("capture: writing response", "err", err)
	}
}
