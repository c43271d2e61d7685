// Package httpauth is the one bearer-key check of every HTTP endpoint: the
// ingest gateway and the read side both wrap their handlers with a Guard.
//
// A request carries "Authorization: Bearer epk_…" (or, where the Guard
// allows it, ?access_token= for EventSource, which cannot set headers). The
// answers, the same on every endpoint:
//
//	401  no key, a malformed, unknown, revoked or expired key (the message is
//	     apikeys.AuthError.Public, never the internal error text)
//	403  the key lacks the role the endpoint needs
//	503  the key store cannot be reached and the key was not seen recently
//	500  the key store answered something unreadable
package httpauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/logging"

	"github.com/eprostream/eprostream/internal/redis/apikeys"
)

// Authenticator returns the key a token belongs to; *apikeys.Store is one.
// It must be safe for concurrent use.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (apikeys.Key, error)
}

// Config says where a token may come from.
type Config struct {
	// QueryToken also accepts ?access_token= (event streams).
	QueryToken bool
}

// Deps are the Guard's collaborators.
type Deps struct {
	Keys Authenticator
	// Fail writes an error answer in the caller's format; status and the
	// public message are all it is given.
	Fail func(w http.ResponseWriter, status int, msg string)
	Log  *slog.Logger // nil discards
}

// Guard admits requests whose key holds a role.
type Guard struct {
	cfg  Config
	deps Deps
}

// New returns a Guard.
func New(cfg Config, deps Deps) (*Guard, error) {
	var errs []error
	if deps.Keys == nil {
		errs = append(errs, errors.New("httpauth: Deps.Keys is required"))
	}
	if deps.Fail == nil {
		errs = append(errs, errors.New("httpauth: Deps.Fail is required"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	deps.Log = logging.OrDiscard(deps.Log)
	return &Guard{cfg: cfg, deps: deps}, nil
}

type keyCtx struct{}

type admitted struct {
	key   apikeys.Key
	token string
}

// KeyOf returns the key Require admitted for r (the zero Key outside it).
func KeyOf(r *http.Request) apikeys.Key {
	a, _ := r.Context().Value(keyCtx{}).(admitted)
	return a.key
}

// TokenOf returns the token Require admitted for r, for handlers that keep
// a connection open and check the key again while it lasts.
func TokenOf(r *http.Request) string {
	a, _ := r.Context().Value(keyCtx{}).(admitted)
	return a.token
}

// AnyRole, as Require's role, admits a valid key of any role.
const AnyRole = ""

// Require admits requests with a valid key that holds role.
func (g *Guard) Require(role string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok && g.cfg.QueryToken {
			token = r.URL.Query().Get("access_token")
		}
		token = strings.TrimSpace(token)
		if token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="eprostream"`)
			msg := "missing API key: send Authorization: Bearer epk_…"
			if g.cfg.QueryToken {
				msg += " (or ?access_token= for an event stream)"
			}
			g.deps.Fail(w, http.StatusUnauthorized, msg)
			return
		}
		k, err := g.deps.Keys.Authenticate(r.Context(), token)
		if err != nil {
			g.refuse(w, err)
			return
		}
		if role != AnyRole && !k.Has(role) {
			g.deps.Fail(w, http.StatusForbidden, "this API key lacks the "+role+" role")
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), keyCtx{}, admitted{key: k, token: token})))
	}
}

// ErrRole is returned by Check for a key that lacks the role.
var ErrRole = errors.New("httpauth: the key lacks the role")

// Check authenticates token again (for a connection that outlives its
// first check): nil, an apikeys error, or ErrRole.
func (g *Guard) Check(ctx context.Context, token, role string) error {
	k, err := g.deps.Keys.Authenticate(ctx, token)
	if err != nil {
		return err
	}
	if !k.Has(role) {
		return fmt.Errorf("%w %s", ErrRole, role)
	}
	return nil
}

func (g *Guard) refuse(w http.ResponseWriter, err error) {
	var auth *apikeys.AuthError
	switch {
	case errors.As(err, &auth):
		w.Header().Set("WWW-Authenticate", `Bearer realm="eprostream", error="invalid_token"`)
		g.deps.Fail(w, http.StatusUnauthorized, auth.Public())
	case errors.Is(err, apikeys.ErrUnavailable):
		g.deps.Log.Warn("API key store unavailable", "err", err)
		w.Header().Set("Retry-After", "1")
		g.deps.Fail(w, http.StatusServiceUnavailable, "cannot check the API key right now; retry")
	default:
		g.deps.Log.Error("API key lookup failed", "err", err)
		g.deps.Fail(w, http.StatusInternalServerError, "API key lookup failed")
	}
}

// ScopeProblem says why k may not act for study, or "" when it may. The
// message names only the study the caller itself sent.
func ScopeProblem(k apikeys.Key, study string) string {
	if k.MayActFor(study) {
		return ""
	}
	return "this API key may not act for study " + codecs.QuoteID(study)
}
