package demail

import (
	"errors"
	"fmt"
	"strings"
)

// maxTags caps the tags of an integrity field; RFC 6376 defines 14.
const maxTags = 32

// tagList is a parsed RFC 6376 section 3.2 tag list.
type tagList map[string]string

// parseTags reads "tag=value; tag=value". Whitespace around names and
// values is dropped (FWS), duplicate tags are an error (section 3.2:
// "tags that appear twice make the whole list invalid").
func parseTags(s string) (tagList, error) {
	tags := tagList{}
	for _, part := range strings.Split(s, ";") {
		if strings.TrimSpace(part) == "" {
			continue // a trailing ";" is allowed
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("tag without \"=\": %q", clip([]byte(part), 30))
		}
		name = strings.TrimSpace(name)
		if !validTagName(name) {
			return nil, fmt.Errorf("invalid tag name %q", clip([]byte(name), 30))
		}
		if _, dup := tags[name]; dup {
			return nil, fmt.Errorf("tag %q appears twice", name)
		}
		if len(tags) == maxTags {
			return nil, errors.New("too many tags")
		}
		tags[name] = strings.Trim(value, " \t\r\n")
	}
	return tags, nil
}

// validTagName: ALPHA *ALNUMPUNC (RFC 6376 section 3.2).
func validTagName(n string) bool {
	if n == "" {
		return false
	}
	for i, c := range n {
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !alpha || !alpha && !(c >= '0' && c <= '9') && c != '_' {
			return false
		}
	}
	return true
}
