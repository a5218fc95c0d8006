// Package httpserve holds what the gateway's HTTP listeners (the office
// API, the web UI, the ops listener) share: running a server until its
// context ends, and the headers of a download of stored bytes, whose media
// type and file name come from senders and so are hostile.
package httpserve

import (
	"context"
	"errors"
	"mime"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/poststelle/poststelle/eventstore/blob"
)

// Run serves srv on ln (with TLS when certFile is set) until ctx ends, then
// shuts it down, giving open requests up to grace to finish. It returns the
// server's error if it stopped by itself, else ctx.Err().
func Run(ctx context.Context, srv *http.Server, ln net.Listener, certFile, keyFile string, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() {
		if certFile != "" {
			errc <- srv.ServeTLS(ln, certFile, keyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	srv.Shutdown(sctx)
	return ctx.Err()
}

// SetWriteDeadline bounds writing one answer.
func SetWriteDeadline(w http.ResponseWriter, d time.Duration) {
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
}

// DownloadHeaders sets the headers of a download of ref: the sender's media
// type reduced to a safe one, the file name as attachment or inline, and
// the length.
func DownloadHeaders(h http.Header, ref blob.Ref, mediaType, filename string, attachment bool) {
	h.Set("Content-Type", SafeMediaType(mediaType))
	disp := "attachment"
	if !attachment {
		disp = "inline"
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": filename}))
	h.Set("Content-Length", strconv.FormatInt(ref.Size, 10))
}

// SafeMediaType keeps a sender's media type and its charset, nothing else;
// anything unreadable is application/octet-stream.
func SafeMediaType(mt string) string {
	t, params, err := mime.ParseMediaType(mt)
	if err != nil || !strings.Contains(t, "/") || strings.ContainsAny(t, "\r\n") {
		return "application/octet-stream"
	}
	keep := map[string]string{}
	if cs, ok := params["charset"]; ok {
		keep["charset"] = cs
	}
	out := mime.FormatMediaType(t, keep)
	if out == "" {
		return "application/octet-stream"
	}
	return out
}

// SafeFilename reduces a sender's file name to a base name without control,
// quote or bidi characters, at most 200 bytes; fallback when nothing is left.
func SafeFilename(name, fallback string) string {
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '"' || r == '/' || r == utf8.RuneError || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(strings.Trim(name, "."))
	for len(name) > 200 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" || name == "." {
		return fallback
	}
	return name
}
