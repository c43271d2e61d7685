package config

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
}

func TestFromEnvOverridesDefaults(t *testing.T) {
	c, err := FromEnv(lookup(map[string]string{
		"KAFKA_BROKERS":    " a:1, b:2 ,",
		"TOPIC_PARTITIONS": "6",
		"DIAL_TIMEOUT":     "250ms",
		"TOPIC_PREFIX":     "test.",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.KafkaBrokers, ",") != "a:1,b:2" || c.Partitions != 6 ||
		c.DialTimeout != 250*time.Millisecond || c.TopicPrefix != "test." {
		t.Fatalf("unexpected config %+v", c)
	}
}

func TestFromEnvNamesBadVariables(t *testing.T) {
	_, err := FromEnv(lookup(map[string]string{"TOPIC_PARTITIONS": "twelve", "DIAL_TIMEOUT": "5"}))
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{`TOPIC_PARTITIONS="twelve": not a whole number`, `DIAL_TIMEOUT="5": not a duration`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	c, err := FromEnv(lookup(map[string]string{"REDIS_ADDR": "env:1"}))
	if err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--kafka-brokers=x:1,y:2"}); err != nil {
		t.Fatal(err)
	}
	if c.RedisAddr != "env:1" || strings.Join(c.KafkaBrokers, ",") != "x:1,y:2" {
		t.Fatalf("unexpected config %+v", c)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no brokers", func(c *Config) { c.KafkaBrokers = nil }, "KAFKA_BROKERS: at least one broker"},
		{"broker without port", func(c *Config) { c.KafkaBrokers = []string{"localhost"} }, `KAFKA_BROKERS: "localhost": want host:port`},
		{"port out of range", func(c *Config) { c.RedisAddr = "h:70000" }, `REDIS_ADDR: "h:70000": port "70000"`},
		{"empty host", func(c *Config) { c.ClickHouseAddr = ":9000" }, "CLICKHOUSE_ADDR"},
		{"prefix with slash", func(c *Config) { c.TopicPrefix = "a/b" }, "TOPIC_PREFIX"},
		{"zero partitions", func(c *Config) { c.Partitions = 0 }, "TOPIC_PARTITIONS: 0 is outside"},
		{"zero replication", func(c *Config) { c.ReplicationFactor = 0 }, "TOPIC_REPLICATION"},
		{"bad database", func(c *Config) { c.ClickHouseDatabase = "x-y" }, "CLICKHOUSE_DATABASE"},
		{"bad level", func(c *Config) { c.LogLevel = "loud" }, `LOG_LEVEL: "loud"`},
		{"bad format", func(c *Config) { c.LogFormat = "xml" }, "LOG_FORMAT"},
		{"bad env", func(c *Config) { c.Env = "Prod!" }, "EPRO_ENV"},
		{"no timeout", func(c *Config) { c.DialTimeout = 0 }, "DIAL_TIMEOUT"},
		{"bad admin", func(c *Config) { c.AdminAddr = "nope" }, "ADMIN_ADDR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsAllErrors(t *testing.T) {
	c := Default()
	c.LogLevel, c.LogFormat = "x", "y"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "LOG_LEVEL") || !strings.Contains(err.Error(), "LOG_FORMAT") {
		t.Fatalf("want both errors, got %v", err)
	}
}

func TestAdminAddrMayBeEmpty(t *testing.T) {
	c := Default()
	c.AdminAddr = ""
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
