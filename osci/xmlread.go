package osci

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/poststelle/poststelle/crypto/xmldsig"
)

// Namespaces and actors of OSCI 1.2 envelopes.
const (
	NamespaceOSCI = "http://www.osci.de/2002/04/osci"
	NamespaceSOAP = "http://schemas.xmlsoap.org/soap/envelope/"
	NamespaceXEnc = "http://www.w3.org/2001/04/xmlenc#"
	ActorNext     = "http://schemas.xmlsoap.org/soap/actor/next"
	ActorNone     = "http://www.w3.org/2001/12/soap-envelope/actor/none"
)

// caps on values that have no business being long.
const (
	maxShortText   = 4 << 10
	maxSubjectText = 64 << 10
	maxBase64Blob  = 16 << 20
)

func formatErr(what string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(what, args...))
}

// onlyElements refuses text other than whitespace between the children of e, and
// returns the children.
func onlyElements(e *xmldsig.Element) ([]*xmldsig.Element, error) {
	for _, n := range e.Children {
		if n.Kind == xmldsig.KindText && strings.TrimSpace(n.Text) != "" {
			return nil, formatErr("text inside <%s>", e.Local)
		}
	}
	return e.Elements(), nil
}

// text returns the trimmed text of a leaf element, refusing children and overlong values.
func text(e *xmldsig.Element, max int) (string, error) {
	if len(e.Elements()) > 0 {
		return "", formatErr("<%s> holds elements where text belongs", e.Local)
	}
	t := e.Text()
	if len(t) > max {
		return "", formatErr("<%s> of %d bytes", e.Local, len(t))
	}
	return strings.TrimSpace(t), nil
}

func base64Text(e *xmldsig.Element, max int) ([]byte, error) {
	t, err := text(e, max*4/3+4096)
	if err != nil {
		return nil, err
	}
	clean := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, t)
	b, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return nil, formatErr("<%s> is not base64: %v", e.Local, err)
	}
	return b, nil
}

// dateTime parses xsd:dateTime as OSCI writes it, with a zone: a time without one
// would be read in whatever zone the reader happens to run in.
func dateTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, formatErr("dateTime %.40q: %v", s, err)
	}
	return t, nil
}

func number(s string) (int64, error) {
	if s == "" || len(s) > 18 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, formatErr("number %.40q", s)
	}
	return strconv.ParseInt(s, 10, 64)
}

func isOSCI(e *xmldsig.Element, local string) bool { return e.Is(NamespaceOSCI, local) }

func id(e *xmldsig.Element) string {
	v, _ := e.Attr("Id")
	return v
}
