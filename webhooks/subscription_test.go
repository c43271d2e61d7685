package webhooks_test

import (
	"strings"
	"testing"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/webhooks"
)

func TestSpecValidate(t *testing.T) {
	valid := webhooks.Spec{Name: "nurse pager", URL: "https://pager.example.org/hooks/epro?team=3",
		Studies: []string{"ONC-301"}, Sites: []string{"SITE-012"}, MinSeverity: codecs.SeverityWarning}
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*webhooks.Spec)
		want []string
	}{
		{"empty", func(s *webhooks.Spec) { *s = webhooks.Spec{} }, []string{"name", "url: required", "studies: at least one"}},
		{"relative url", func(s *webhooks.Spec) { s.URL = "/hooks" }, []string{"not an absolute http:// or https:// URL"}},
		{"ftp url", func(s *webhooks.Spec) { s.URL = "ftp://example.org/x" }, []string{"not an absolute http:// or https://"}},
		{"opaque url", func(s *webhooks.Spec) { s.URL = "https:example.org" }, []string{"not an absolute"}},
		{"no host", func(s *webhooks.Spec) { s.URL = "https:///x" }, []string{"has no host"}},
		{"bad port", func(s *webhooks.Spec) { s.URL = "https://example.org:70000/x" }, []string{"port"}},
		{"credentials", func(s *webhooks.Spec) { s.URL = "https://u:p@example.org/x" }, []string{"credentials"}},
		{"fragment", func(s *webhooks.Spec) { s.URL = "https://example.org/x#y" }, []string{"fragment"}},
		{"long url", func(s *webhooks.Spec) { s.URL = "https://example.org/" + strings.Repeat("a", 2048) }, []string{"longer than"}},
		{"bad study and site", func(s *webhooks.Spec) { s.Studies = []string{"ONC 301"}; s.Sites = []string{"*"} },
			[]string{`studies: "ONC 301" is not an id`, `sites: "*" is not an id`}},
		{"severity", func(s *webhooks.Spec) { s.MinSeverity = "critical" }, []string{`min severity: "critical"`}},
		{"long name", func(s *webhooks.Spec) { s.Name = strings.Repeat("n", 201) }, []string{"name: 1 to 200"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := valid
			c.edit(&s)
			err := s.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "webhooks: ") {
				t.Errorf("error %q is not prefixed with the package", err)
			}
		})
	}
}

func TestMatches(t *testing.T) {
	sub := webhooks.Subscription{Studies: []string{"ONC-301"}, Sites: []string{"SITE-012"}, MinSeverity: codecs.SeverityWarning}
	all := webhooks.Subscription{Studies: []string{webhooks.AllStudies}, MinSeverity: codecs.SeverityInfo}
	for _, c := range []struct {
		name      string
		a         codecs.Alert
		sub, all_ bool
	}{
		{"match", codecs.Alert{StudyID: "ONC-301", SiteID: "SITE-012", Severity: codecs.SeverityUrgent}, true, true},
		{"at min severity", codecs.Alert{StudyID: "ONC-301", SiteID: "SITE-012", Severity: codecs.SeverityWarning}, true, true},
		{"below min severity", codecs.Alert{StudyID: "ONC-301", SiteID: "SITE-012", Severity: codecs.SeverityInfo}, false, true},
		{"other site", codecs.Alert{StudyID: "ONC-301", SiteID: "SITE-013", Severity: codecs.SeverityUrgent}, false, true},
		{"other study", codecs.Alert{StudyID: "CAR-200", SiteID: "SITE-012", Severity: codecs.SeverityUrgent}, false, true},
		{"unknown severity", codecs.Alert{StudyID: "ONC-301", SiteID: "SITE-012", Severity: "severe"}, false, false},
	} {
		if got := sub.Matches(c.a); got != c.sub {
			t.Errorf("%s: filtered subscription matches=%v", c.name, got)
		}
		if got := all.Matches(c.a); got != c.all_ {
			t.Errorf("%s: all-studies subscription matches=%v", c.name, got)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	err := webhooks.Config{QueueSize: -1, Attempts: 101, InitialBackoff: -1, MaxBackoff: -2, RequestTimeout: -1, Refresh: -1}.Validate()
	for _, want := range []string{"queue size", "attempts", "initial backoff", "max backoff", "request timeout", "refresh"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
	if _, err := webhooks.New(webhooks.Config{}, webhooks.Deps{}); err == nil {
		t.Error("New without a Store")
	}
}
