package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServesPageAndAssets(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"from":"api"}`)
	})
	h, err := New(api, Options{Title: `Traces <prod>`})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	cases := []struct {
		path, wantType, wantBody string
		code                     int
	}{
		{"/", "text/html", `<title>Traces &lt;prod&gt;</title>`, 200},
		{"/static/app.js", "javascript", "textContent", 200},
		{"/static/app.css", "text/css", ".span-row", 200},
		{"/api/traces", "application/json", `"from":"api"`, 200},
		{"/static/nope.js", "", "", 404},
		{"/index.html", "", "", 404},
		{"/trace/abc", "", "", 404},
	}
	for _, c := range cases {
		res, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.code {
			t.Errorf("%s: status %d, want %d", c.path, res.StatusCode, c.code)
			continue
		}
		if c.code != 200 {
			continue
		}
		if !strings.Contains(res.Header.Get("Content-Type"), c.wantType) || !strings.Contains(string(body), c.wantBody) {
			t.Errorf("%s: %s %.120q, want %s containing %q", c.path, res.Header.Get("Content-Type"), body, c.wantType, c.wantBody)
		}
		if c.path != "/api/traces" && !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("%s: no CSP header", c.path)
		}
	}

	// The page references no other origin.
	res, _ := http.Get(srv.URL + "/")
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, s := range []string{"http://", "https://", "//cdn", "<script>"} {
		if strings.Contains(string(page), s) {
			t.Errorf("page contains %q", s)
		}
	}
}

func TestNoAPIHandler(t *testing.T) {
	h, err := New(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/traces", nil))
	if rec.Code != 404 {
		t.Errorf("/api/traces without an API handler: %d", rec.Code)
	}
}

// The script must never turn data into markup.
func TestScriptAvoidsInnerHTML(t *testing.T) {
	b, err := static.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(string(b), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}
