package httpserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestWebhook(t *testing.T) {
	secret := "0123456789abcdef-secret"
	var fired atomic.Int32
	h, err := New(fixedSnapshots{}, Options{WebhookSecret: []byte(secret), Trigger: func() { fired.Add(1) }})
	must(t, err)
	sign := func(body string) string {
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(body))
		return "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	body := `{"ref":"refs/heads/main"}`
	for _, c := range []struct {
		name    string
		body    string
		headers map[string]string
		code    int
		fires   bool
	}{
		{"github signature", body, map[string]string{"X-Hub-Signature-256": sign(body)}, 202, true},
		{"gitlab token", body, map[string]string{"X-Gitlab-Token": secret}, 202, true},
		{"signature of another body", body + " ", map[string]string{"X-Hub-Signature-256": sign(body)}, 401, false},
		{"wrong token", body, map[string]string{"X-Gitlab-Token": "guess"}, 401, false},
		{"not hex", body, map[string]string{"X-Hub-Signature-256": "sha256=zz"}, 401, false},
		{"sha1 only", body, map[string]string{"X-Hub-Signature": "sha1=00"}, 401, false},
		{"no signature", body, nil, 401, false},
		{"oversized", strings.Repeat("x", maxHookBody+1), map[string]string{"X-Hub-Signature-256": sign(strings.Repeat("x", maxHookBody+1))}, 413, false},
	} {
		before := fired.Load()
		req := httptest.NewRequest("POST", "/hooks/git", strings.NewReader(c.body))
		for k, v := range c.headers {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != c.code || (fired.Load() > before) != c.fires {
			t.Errorf("%s: %d, fired %v; want %d, %v", c.name, w.Code, fired.Load() > before, c.code, c.fires)
		}
		if strings.Contains(w.Body.String(), secret) {
			t.Errorf("%s: the answer contains the secret", c.name)
		}
	}
	if w := get(t, h, "/hooks/git"); w.Code == http.StatusAccepted {
		t.Error("GET triggers the webhook")
	}
}

func TestNoWebhookWithoutSecret(t *testing.T) {
	h, err := New(fixedSnapshots{}, Options{Trigger: func() { t.Error("triggered without a secret") }})
	must(t, err)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/hooks/git", strings.NewReader("{}")))
	if w.Code == http.StatusAccepted {
		t.Errorf("webhook answered %d with no secret configured", w.Code)
	}
}
