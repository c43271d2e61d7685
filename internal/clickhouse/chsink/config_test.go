package chsink

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A bound that cannot hold is refused, never silently changed.
func TestNewRefusesMaxBufferedBelowMaxRows(t *testing.T) {
	_, err := New(Config{Database: "wh", MaxRows: 100, MaxBuffered: 10}, Deps{Conn: newFakeConn()})
	if err == nil || !strings.Contains(err.Error(), "MaxBuffered (10) is below MaxRows (100)") {
		t.Fatalf("New = %v, want the MaxBuffered/MaxRows refusal", err)
	}
	if _, err := New(Config{MaxRows: 10}, Deps{Conn: newFakeConn()}); err == nil || !strings.Contains(err.Error(), "Database is required") {
		t.Fatalf("New without a database = %v", err)
	}
}

// Two sinks on one registry: the second is an error, not a panic.
func TestNewReportsADuplicateRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Database: "wh"}, Deps{Conn: newFakeConn(), Registry: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Database: "wh"}, Deps{Conn: newFakeConn(), Registry: reg}); err == nil {
		t.Fatal("second New on the same registry succeeded")
	}
}
