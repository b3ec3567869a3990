package httpserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/pxeops/pxeops/internal/ratelog"
)

// maxHookBody caps a webhook's body; push events are far smaller.
const maxHookBody = 1 << 20

// webhookWarnEvery spaces the warnings of refused webhooks: anyone who
// reaches the port can send them.
const webhookWarnEvery = 10 * time.Second

// webhook triggers an immediate fetch of the git source. It checks the
// GitHub signature (X-Hub-Signature-256: HMAC-SHA256 of the body) or the
// GitLab token (X-Gitlab-Token) against the secret, and never reads the
// payload for anything else: config only ever comes from git.
type webhook struct {
	secret  []byte
	trigger func()
	log     *slog.Logger
	refused *ratelog.Logger
}

// ServeHTTP expects the body bounded by withBody.
func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	if !h.authentic(r, body) {
		h.refused.Warn("webhook", "webhook refused: bad or missing signature", "remote", r.RemoteAddr)
		http.Error(w, "bad or missing X-Hub-Signature-256 / X-Gitlab-Token", http.StatusUnauthorized)
		return
	}
	h.trigger()
	h.log.Debug("webhook: fetch triggered", "remote", r.RemoteAddr, "event", r.Header.Get("X-GitHub-Event")+r.Header.Get("X-Gitlab-Event"))
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "fetch scheduled\n")
}

func (h *webhook) authentic(r *http.Request, body []byte) bool {
	if sig, ok := strings.CutPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256="); ok {
		got, err := hex.DecodeString(sig)
		if err != nil {
			return false
		}
		mac := hmac.New(sha256.New, h.secret)
		mac.Write(body)
		return hmac.Equal(got, mac.Sum(nil))
	}
	if tok := r.Header.Get("X-Gitlab-Token"); tok != "" {
		return subtle.ConstantTimeCompare([]byte(tok), h.secret) == 1
	}
	return false
}
