// Package web serves the trace explorer: one HTML page, a small script and
// a stylesheet, all embedded in the binary. The page reads everything from
// the JSON API (package api); it fetches nothing from other origins.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"time"
)

//go:embed templates/index.html
var templates embed.FS

//go:embed static
var static embed.FS

// Options tune the page.
type Options struct {
	// Title is shown in the header and the browser tab. Default "kern traces".
	Title string
	// APIBase is where the page finds the JSON API, relative to the page.
	// Default "api" (so /api/... when the page is served at /).
	APIBase string
	// PollInterval is how often the list refreshes while "Live" is on.
	// Default 5s.
	PollInterval time.Duration
}

func (o Options) withDefaults() Options {
	if o.Title == "" {
		o.Title = "kern traces"
	}
	if o.APIBase == "" {
		o.APIBase = "api"
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 5 * time.Second
	}
	return o
}

// csp allows only this origin's own script, style and API; data never
// becomes markup (the script uses textContent), and this is the backstop.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// New returns the handler for the page at "/" and its assets under
// "/static/". When api is not nil, requests under "/api/" go to it, so one
// handler serves the whole explorer; other paths are 404.
func New(api http.Handler, opts Options) (http.Handler, error) {
	opts = opts.withDefaults()
	assets, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("web: static assets: %w", err)
	}
	version, err := assetVersion(assets)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.ParseFS(templates, "templates/index.html")
	if err != nil {
		return nil, fmt.Errorf("web: parse page template: %w", err)
	}
	var page bytes.Buffer
	err = tmpl.Execute(&page, map[string]any{
		"Title":   opts.Title,
		"APIBase": opts.APIBase,
		"PollMS":  strconv.FormatInt(opts.PollInterval.Milliseconds(), 10),
		"Version": version,
	})
	if err != nil {
		return nil, fmt.Errorf("web: render page: %w", err)
	}
	index := page.Bytes()

	mux := http.NewServeMux()
	if api != nil {
		mux.Handle("/api/", api)
	}
	files := http.FileServerFS(assets)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		// Asset URLs carry ?v=<content hash>, so they may be cached for long.
		if r.URL.Query().Get("v") == version {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(index)
	})
	return mux, nil
}

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// assetVersion hashes the embedded assets, for cache-busting URLs.
func assetVersion(assets fs.FS) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(assets, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assets, path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("web: hash static assets: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}
