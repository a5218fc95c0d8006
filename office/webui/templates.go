package webui

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// pageNames are the pages; each is templates/NAME.html with the layout.
var pageNames = []string{"login", "error", "overview", "triage", "search", "offices", "office", "message", "audit"}

func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"t":    translate,
		"time": func(l string, t time.Time) string { return formatTime(l, t) },
		"timep": func(l string, t *time.Time) string {
			if t == nil {
				return "–"
			}
			return formatTime(l, *t)
		},
		"join": strings.Join,
		"dict": func(l string, v any) map[string]any { return map[string]any{"Lang": l, "V": v} },
		"size": func(n int64) string {
			switch {
			case n >= 1<<20:
				return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
			case n >= 1<<10:
				return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
			}
			return fmt.Sprintf("%d B", n)
		},
		"yesno": func(l string, b bool) string {
			if b {
				return translate(l, "message.yes")
			}
			return translate(l, "message.no")
		},
		"date": func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.Format("2006-01-02")
		},
		"has": func(list []string, s string) bool {
			for _, x := range list {
				if x == s {
					return true
				}
			}
			return false
		},
	}
}

func parsePages() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(templateFuncs()).ParseFS(templateFiles, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("webui: parse template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}
