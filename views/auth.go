package views

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/eprostream/eprostream/internal/redis/apikeys"
)

type readerCtx struct{}

// readerOf is the API key authenticate admitted.
func readerOf(r *http.Request) apikeys.Key {
	k, _ := r.Context().Value(readerCtx{}).(apikeys.Key)
	return k
}

// authenticate admits requests with an API key holding the read role, sent
// as "Authorization: Bearer epk_…" or, for EventSource, which cannot set
// headers, as ?access_token=. Patients' data is never served without one.
func (s *Server) authenticate(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			token = r.URL.Query().Get("access_token")
		}
		if token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="eprostream"`)
			writeJSON(w, http.StatusUnauthorized, problem{Error: "missing API key: send Authorization: Bearer epk_… (or ?access_token= for an event stream)"})
			return
		}
		k, err := s.keys.Authenticate(r.Context(), strings.TrimSpace(token))
		switch {
		case errors.Is(err, apikeys.ErrUnavailable):
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, problem{Error: "cannot check the API key right now; retry"})
			return
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Bearer realm="eprostream", error="invalid_token"`)
			writeJSON(w, http.StatusUnauthorized, problem{Error: strings.TrimPrefix(err.Error(), "apikeys: ")})
			return
		case !k.Has(apikeys.RoleRead):
			writeJSON(w, http.StatusForbidden, problem{Error: "this API key lacks the read role"})
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), readerCtx{}, k)))
	}
}

// readableStudies narrows studies to those k may read (all of them for a
// key of every study).
func readableStudies(k apikeys.Key, studies []string) []string {
	if k.MayActFor(apikeys.AllStudies) {
		return studies
	}
	return slices.DeleteFunc(slices.Clone(studies), func(s string) bool { return !k.MayActFor(s) })
}
