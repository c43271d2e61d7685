package views

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/eprostream/eprostream/internal/logging"
)

// AckProxy forwards the dashboard's acknowledgements, POST
// /v1/alerts/{id}/ack with the caller's own key, to the ingest API at
// ingestURL, which authorizes them (operate role, the alert's own study and
// subject) and sends the command to epro-commands: the one command path,
// idempotent by the alert id. The page stays on one origin, so no CORS is
// needed. Nothing else is forwarded.
func AckProxy(ingestURL string, log *slog.Logger) (http.Handler, error) {
	u, err := url.Parse(ingestURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("views: the ingest API's URL %q is not an http(s) URL", ingestURL)
	}
	log = logging.OrDiscard(log)
	target := strings.TrimSuffix(u.Path, "/")
	p := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.URL.Path = target + "/v1/alerts/" + url.PathEscape(r.In.PathValue("id")) + "/ack"
			r.Out.URL.RawPath, r.Out.URL.RawQuery = "", ""
		},
		Transport: &http.Transport{ResponseHeaderTimeout: 15 * time.Second, MaxIdleConnsPerHost: 8},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("acknowledgement not forwarded: the ingest API did not answer", "err", err)
			writeJSON(w, http.StatusBadGateway, problem{Error: "the ingest API did not answer; retry (acknowledging twice is harmless)"})
		},
	}
	return http.MaxBytesHandler(p, 16<<10), nil
}
