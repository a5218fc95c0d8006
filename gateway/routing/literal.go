package routing

import (
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// pattern is a compiled regular expression with a prefilter: a literal that
// every match must contain. Checking the literal in the folded text costs a
// substring search; most rules fail there and never run the automaton.
type pattern struct {
	re *regexp.Regexp
	// need is the required literal in fold form (see fold), or "".
	need string
}

func newPattern(p string) (*pattern, error) {
	re, err := compilePattern(p)
	if err != nil {
		return nil, err
	}
	pt := &pattern{re: re}
	if tree, err := syntax.Parse(p, syntax.Perl); err == nil {
		pt.need = fold(required(tree))
	}
	return pt, nil
}

// match runs the prefilter on the folded text, then the expression.
func (p *pattern) match(text, folded string) bool {
	if p.need != "" && !strings.Contains(folded, p.need) {
		return false
	}
	return p.re.MatchString(text)
}

func (p *pattern) String() string { return p.re.String() }

// required returns the longest ASCII literal that every match of re must
// contain, or "".
func required(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpLiteral:
		s := string(re.Rune)
		for _, r := range re.Rune {
			if r >= utf8.RuneSelf {
				return ""
			}
		}
		return s
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
	case syntax.OpConcat:
		best := ""
		for _, sub := range re.Sub {
			if l := required(sub); len(l) > len(best) {
				best = l
			}
		}
		return best
	}
	return ""
}

// fold maps text so that the fold of a literal occurs in the fold of every
// text the literal matches, with or without (?i): ASCII letters are
// lowercased, and the two non-ASCII runes whose simple case folding reaches
// ASCII letters (ſ U+017F → s, K U+212A → k) are mapped to them. Other runes
// stay; required literals are ASCII only.
func fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	return strings.Map(func(r rune) rune {
		switch {
		case 'A' <= r && r <= 'Z':
			return r + 'a' - 'A'
		case r == '\u017f':
			return 's'
		case r == '\u212a':
			return 'k'
		}
		return r
	}, s)
}
