package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Request headers of every delivery attempt.
const (
	HeaderSignature = "X-Eprostream-Signature" // "sha256=<hex>"
	HeaderTimestamp = "X-Eprostream-Timestamp" // unix seconds of the attempt
	HeaderAlertID   = "X-Eprostream-Alert-Id"  // deduplicate on this
)

// DefaultTolerance is the clock difference Verify accepts when given none.
const DefaultTolerance = 5 * time.Minute

// Verification failures; a receiver answers them with 401.
var (
	ErrMissingSignature  = errors.New("webhooks: missing or malformed signature headers")
	ErrSignatureMismatch = errors.New("webhooks: signature does not match")
	ErrStaleTimestamp    = errors.New("webhooks: timestamp outside the tolerance")
)

// Sign returns the X-Eprostream-Signature value of body sent at timestamp
// (unix seconds): "sha256=" and the hex HMAC-SHA256 of "<timestamp>.<body>".
func Sign(secret string, timestamp int64, body []byte) string {
	return "sha256=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret string, timestamp int64, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(strconv.AppendInt(nil, timestamp, 10))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks that body was signed with secret and sent within tolerance
// of now (either way, for clock skew); tolerance <= 0 means
// DefaultTolerance. Pass the raw body, before any JSON decoding. A request
// that verifies may still be a repeat: deduplicate on HeaderAlertID.
func Verify(secret string, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return errors.New("webhooks: verify: empty secret")
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	ts, err := strconv.ParseInt(header.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s is not unix seconds", ErrMissingSignature, HeaderTimestamp)
	}
	hexSig, ok := strings.CutPrefix(header.Get(HeaderSignature), "sha256=")
	got, err := hex.DecodeString(hexSig)
	if !ok || err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: %s is not sha256=<64 hex digits>", ErrMissingSignature, HeaderSignature)
	}
	if !hmac.Equal(got, mac(secret, ts, body)) {
		return ErrSignatureMismatch
	}
	if skew := now.Sub(time.Unix(ts, 0)).Abs(); skew > tolerance {
		return fmt.Errorf("%w: sent %s from now, tolerance %s", ErrStaleTimestamp, skew.Round(time.Second), tolerance)
	}
	return nil
}
