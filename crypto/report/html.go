package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"time"
)

//go:embed pruefprotokoll.html.tmpl
var pruefprotokollSource string

// pruefprotokoll is parsed once; templates are safe for concurrent use.
var pruefprotokoll = template.Must(template.New("pruefprotokoll").Funcs(template.FuncMap{
	"time":    htmlTime,
	"timePtr": htmlTimePtr,
	"inc":     func(i int) int { return i + 1 },
	// clean escapes control characters from the document (as in WriteText);
	// html/template then escapes markup.
	"clean": clean,
	"indicationClass": func(i Indication) string {
		switch i {
		case TotalPassed, Passed:
			return "ok"
		case TotalFailed, Failed:
			return "failed"
		}
		return "indeterminate"
	},
	"originClass": func(level string) string {
		switch level {
		case OriginVHN:
			return "ok"
		case OriginSenderSigned:
			return "indeterminate"
		}
		return "info"
	},
	"resultClass": func(r CheckResult) string {
		switch r {
		case CheckOK:
			return "ok"
		case CheckFailed:
			return "failed"
		case CheckWarning:
			return "indeterminate"
		}
		return "info"
	},
}).Parse(pruefprotokollSource))

// WriteHTML writes r as a Prüfprotokoll: a self-contained, printable HTML
// page (inline CSS, no scripts, no external resources) with German labels and
// English in parallel. Everything from the document is escaped by
// html/template, and control characters in it are shown escaped.
func WriteHTML(w io.Writer, r *Report) error {
	if err := pruefprotokoll.Execute(w, r); err != nil {
		return fmt.Errorf("report: write html: %w", err)
	}
	return nil
}

func htmlTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("02.01.2006 15:04:05 UTC")
}

func htmlTimePtr(t *time.Time) string {
	if t == nil {
		return "–"
	}
	return htmlTime(*t)
}
