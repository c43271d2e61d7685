package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/eprostream/eprostream/internal/redis/apikeys"
)

type keyCtx struct{}

// keyOf returns the API key authenticate put in the request's context.
func keyOf(r *http.Request) apikeys.Key {
	k, _ := r.Context().Value(keyCtx{}).(apikeys.Key)
	return k
}

// authenticate admits requests with a valid API key holding role.
func (g *Gateway) authenticate(role string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="eprostream"`)
			fail(w, http.StatusUnauthorized, "missing API key: send Authorization: Bearer epk_…")
			return
		}
		k, err := g.deps.Keys.Authenticate(r.Context(), strings.TrimSpace(token))
		switch {
		case err == nil:
		case errors.Is(err, apikeys.ErrUnavailable):
			g.log.Warn("API key store unavailable", "err", err)
			w.Header().Set("Retry-After", "1")
			fail(w, http.StatusServiceUnavailable, "cannot check the API key right now; retry")
			return
		case errors.Is(err, apikeys.ErrMalformed), errors.Is(err, apikeys.ErrUnknown),
			errors.Is(err, apikeys.ErrRevoked), errors.Is(err, apikeys.ErrExpired):
			w.Header().Set("WWW-Authenticate", `Bearer realm="eprostream", error="invalid_token"`)
			fail(w, http.StatusUnauthorized, strings.TrimPrefix(err.Error(), "apikeys: "))
			return
		default:
			g.log.Error("API key lookup failed", "err", err)
			fail(w, http.StatusInternalServerError, "API key lookup failed")
			return
		}
		if !k.Has(role) {
			fail(w, http.StatusForbidden, "this API key lacks the "+role+" role")
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), keyCtx{}, k)))
	}
}

// scopeProblem says why key may not act for study, or "".
func scopeProblem(k apikeys.Key, study string) string {
	if k.MayActFor(study) {
		return ""
	}
	return "this API key may not act for study " + quote(study)
}

// quote shows a caller's id back to it, shortened; ids are not PHI.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}
