package httpauth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eprostream/eprostream/internal/httpauth"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
)

// keys answers every token with one fixed result.
type keys struct {
	key apikeys.Key
	err error
}

func (k keys) Authenticate(context.Context, string) (apikeys.Key, error) { return k.key, k.err }

func TestAnswers(t *testing.T) {
	reader := apikeys.Key{ID: "k1", Studies: []string{"ONC-301"}, Roles: []string{apikeys.RoleRead}}
	cases := []struct {
		name       string
		keys       keys
		header     string
		query      string
		queryToken bool
		status     int
		msg        string
	}{
		{"no key", keys{}, "", "", false, 401, "missing API key"},
		{"query token where not allowed", keys{key: reader}, "", "epk_x", false, 401, "missing API key"},
		{"query token where allowed", keys{key: reader}, "", "epk_x", true, 200, ""},
		{"malformed", keys{err: apikeys.ErrMalformed}, "Bearer x", "", false, 401, "malformed API key (want epk_<id>_<secret>)"},
		{"unknown", keys{err: apikeys.ErrUnknown}, "Bearer x", "", false, 401, "unknown API key"},
		{"revoked", keys{err: apikeys.ErrRevoked}, "Bearer x", "", false, 401, "API key revoked"},
		{"expired", keys{err: apikeys.ErrExpired}, "Bearer x", "", false, 401, "API key expired"},
		{"wrapped revoked", keys{err: errors.Join(errors.New("ctx"), apikeys.ErrRevoked)}, "Bearer x", "", false, 401, "API key revoked"},
		{"store unreachable", keys{err: apikeys.ErrUnavailable}, "Bearer x", "", false, 503, "retry"},
		{"store answered garbage", keys{err: errors.New("apikeys: decode record: bad json")}, "Bearer x", "", false, 500, "API key lookup failed"},
		{"wrong role", keys{key: apikeys.Key{ID: "k2", Roles: []string{apikeys.RoleSubmit}}}, "Bearer x", "", false, 403, "lacks the read role"},
		{"admitted", keys{key: reader}, "Bearer x", "", false, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got string
			g, err := httpauth.New(httpauth.Config{QueryToken: c.queryToken}, httpauth.Deps{Keys: c.keys,
				Fail: func(w http.ResponseWriter, status int, msg string) { got = msg; w.WriteHeader(status) }})
			if err != nil {
				t.Fatal(err)
			}
			var admitted apikeys.Key
			h := g.Require(apikeys.RoleRead, func(w http.ResponseWriter, r *http.Request) { admitted = httpauth.KeyOf(r) })
			url := "/x"
			if c.query != "" {
				url += "?access_token=" + c.query
			}
			req := httptest.NewRequest("GET", url, nil)
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			rec := httptest.NewRecorder()
			h(rec, req)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d (%q)", rec.Code, c.status, got)
			}
			if c.status == 200 {
				if admitted.ID != c.keys.key.ID {
					t.Fatalf("handler saw key %q, want %q", admitted.ID, c.keys.key.ID)
				}
				return
			}
			if !strings.Contains(got, c.msg) || strings.Contains(got, "apikeys:") {
				t.Fatalf("message %q, want it to hold %q and no package prefix", got, c.msg)
			}
		})
	}
}

func TestScopeProblemNamesOnlyTheCallersStudy(t *testing.T) {
	k := apikeys.Key{Studies: []string{"ONC-301"}}
	if msg := httpauth.ScopeProblem(k, "ONC-301"); msg != "" {
		t.Fatalf("own study refused: %s", msg)
	}
	msg := httpauth.ScopeProblem(k, "CAR-200")
	if msg == "" || strings.Contains(msg, "ONC-301") {
		t.Fatalf("other study: %q, want a refusal that does not name the key's studies", msg)
	}
}

func TestNewRequiresItsDeps(t *testing.T) {
	if _, err := httpauth.New(httpauth.Config{}, httpauth.Deps{}); err == nil {
		t.Fatal("New without Keys and Fail succeeded")
	}
}
