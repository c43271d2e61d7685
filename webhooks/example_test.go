package webhooks_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"github.com/eprostream/eprostream/webhooks"
)

// A receiver checks each request with Verify on the raw body, answers 2xx
// quickly, and drops repeats by X-Eprostream-Alert-Id: delivery is at least
// once.
func ExampleVerify() {
	secret := "whsec_returned-once-by-Create" // from Store.Create; keep it secret
	var seen sync.Map                         // in production: a store shared by the receiver's replicas

	receive := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable body", http.StatusBadRequest)
			return
		}
		if err := webhooks.Verify(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if _, dup := seen.LoadOrStore(r.Header.Get(webhooks.HeaderAlertID), true); dup {
			w.WriteHeader(http.StatusOK) // already have it
			return
		}
		// Hand the alert (JSON in body) to a queue, then answer.
		w.WriteHeader(http.StatusAccepted)
	}

	// What the Deliverer sends, to show the receiver at work.
	post := func(body []byte, sentAt time.Time) int {
		req := httptest.NewRequest(http.MethodPost, "/hooks/eprostream", bytes.NewReader(body))
		req.Header.Set(webhooks.HeaderAlertID, "9f2c4e1a")
		req.Header.Set(webhooks.HeaderTimestamp, strconv.FormatInt(sentAt.Unix(), 10))
		req.Header.Set(webhooks.HeaderSignature, webhooks.Sign(secret, sentAt.Unix(), body))
		rec := httptest.NewRecorder()
		receive(rec, req)
		return rec.Code
	}
	body := []byte(`{"alert_id":"9f2c4e1a","severity":"urgent","study_id":"ONC-301"}`)
	fmt.Println("first delivery:", post(body, time.Now()))
	fmt.Println("retry of the same alert:", post(body, time.Now()))
	fmt.Println("replayed an hour later:", post(body, time.Now().Add(-time.Hour)))

	// Verify on its own: a tampered body fails.
	sent := time.Unix(1_780_000_000, 0)
	h := http.Header{}
	h.Set(webhooks.HeaderTimestamp, strconv.FormatInt(sent.Unix(), 10))
	h.Set(webhooks.HeaderSignature, webhooks.Sign(secret, sent.Unix(), body))
	fmt.Println(webhooks.Verify(secret, h, body, sent.Add(time.Second), 0))
	fmt.Println(webhooks.Verify(secret, h, []byte(`{"severity":"info"}`), sent, 0))
	// Output:
	// first delivery: 202
	// retry of the same alert: 200
	// replayed an hour later: 401
	// <nil>
	// webhooks: signature does not match
}
