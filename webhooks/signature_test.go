package webhooks_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/eprostream/eprostream/webhooks"
)

func signed(secret string, at time.Time, body []byte) http.Header {
	h := http.Header{}
	h.Set(webhooks.HeaderTimestamp, strconv.FormatInt(at.Unix(), 10))
	h.Set(webhooks.HeaderSignature, webhooks.Sign(secret, at.Unix(), body))
	return h
}

func TestVerify(t *testing.T) {
	const secret = "whsec_test"
	body := []byte(`{"alert_id":"a1","severity":"urgent"}`)
	sent := time.Unix(1_780_000_000, 0)
	good := signed(secret, sent, body)
	noSig := good.Clone()
	noSig.Del(webhooks.HeaderSignature)
	badHex := good.Clone()
	badHex.Set(webhooks.HeaderSignature, "sha256=zz")
	noTS := good.Clone()
	noTS.Del(webhooks.HeaderTimestamp)
	otherTS := good.Clone() // a valid signature moved to another time
	otherTS.Set(webhooks.HeaderTimestamp, strconv.FormatInt(sent.Unix()+1, 10))

	for _, c := range []struct {
		name   string
		secret string
		header http.Header
		body   []byte
		now    time.Time
		want   error
	}{
		{"valid", secret, good, body, sent.Add(time.Minute), nil},
		{"valid, receiver clock behind", secret, good, body, sent.Add(-time.Minute), nil},
		{"tampered body", secret, good, []byte(`{"alert_id":"a1","severity":"info"}`), sent, webhooks.ErrSignatureMismatch},
		{"other secret", "whsec_other", good, body, sent, webhooks.ErrSignatureMismatch},
		{"timestamp changed", secret, otherTS, body, sent, webhooks.ErrSignatureMismatch},
		{"old timestamp", secret, good, body, sent.Add(6 * time.Minute), webhooks.ErrStaleTimestamp},
		{"future timestamp", secret, good, body, sent.Add(-6 * time.Minute), webhooks.ErrStaleTimestamp},
		{"no signature", secret, noSig, body, sent, webhooks.ErrMissingSignature},
		{"signature not hex", secret, badHex, body, sent, webhooks.ErrMissingSignature},
		{"no timestamp", secret, noTS, body, sent, webhooks.ErrMissingSignature},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := webhooks.Verify(c.secret, c.header, c.body, c.now, 5*time.Minute)
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("Verify: %v, want %v", err, c.want)
			}
		})
	}
	if err := webhooks.Verify("", good, body, sent, 0); err == nil {
		t.Fatal("an empty secret verified a request")
	}
}

// A fixed vector computed outside this code, so Sign cannot agree with a
// wrong Verify (or the README's recipe) by sharing its mistake:
//
//	printf '%s' '1780000000.{"alert_id":"a1","severity":"urgent"}' | openssl dgst -sha256 -hmac whsec_test
func TestSignatureMatchesAnIndependentVector(t *testing.T) {
	const want = "sha256=9b82d4972dd6c383bf0f3c49b6499ed06d083673e1a92fbd126fe3dc53ee1f3c"
	body := []byte(`{"alert_id":"a1","severity":"urgent"}`)
	if got := webhooks.Sign("whsec_test", 1_780_000_000, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	h := http.Header{}
	h.Set(webhooks.HeaderTimestamp, "1780000000")
	h.Set(webhooks.HeaderSignature, want)
	if err := webhooks.Verify("whsec_test", h, body, time.Unix(1_780_000_000, 0), time.Minute); err != nil {
		t.Fatalf("Verify of the independent vector: %v", err)
	}
}
