package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
		{"a certificate without its key", func(c *Config) { c.TLSCertFile = "tls.crt" }, "TLS_CERT_FILE: and TLS_KEY_FILE go together"},
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

// A password may come from a file (a mounted container secret), never both
// ways at once; it is never shown: not in --help, not when the Config is
// printed or logged, not in an error.
func TestSecretsComeFromFilesAndAreNeverShown(t *testing.T) {
	const secret = "s3cret-Pa55 word"
	dir := t.TempDir()
	path := filepath.Join(dir, "clickhouse-password")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := FromEnv(lookup(map[string]string{"CLICKHOUSE_PASSWORD_FILE": path, "REDIS_PASSWORD": secret}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ClickHousePassword != secret || c.RedisPassword != secret {
		t.Fatalf("passwords %q / %q, want %q from the file and the variable", c.ClickHousePassword, c.RedisPassword, secret)
	}
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	if c.ClickHousePassword != secret {
		t.Fatalf("registering the flags changed the password to %q", c.ClickHousePassword)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("starting", "config", c)
	for where, text := range map[string]string{"--help": fs.FlagUsages(), "fmt": fmt.Sprint(c), "%+v": fmt.Sprintf("%+v", c), "log": logged.String()} {
		if !strings.Contains(text, "clickhouse-password") && !strings.Contains(text, "ClickHousePassword") {
			t.Fatalf("%s does not mention the ClickHouse password at all:\n%s", where, text)
		}
		if strings.Contains(text, "s3cret") {
			t.Errorf("%s shows the secret:\n%s", where, text)
		}
	}
	if err := fs.Parse([]string{"--clickhouse-password", "from-flag"}); err != nil || c.ClickHousePassword != "from-flag" {
		t.Fatalf("the flag does not set the password: %v, %q", err, c.ClickHousePassword)
	}

	_, err = FromEnv(lookup(map[string]string{"REDIS_PASSWORD": secret, "REDIS_PASSWORD_FILE": path}))
	if err == nil || !strings.Contains(err.Error(), "REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set") {
		t.Fatalf("both set: %v", err)
	}
	_, err = FromEnv(lookup(map[string]string{"REDIS_PASSWORD_FILE": filepath.Join(dir, "missing")}))
	if err == nil || !strings.Contains(err.Error(), "REDIS_PASSWORD_FILE") {
		t.Fatalf("missing file: %v", err)
	}
}

// The services' TLS and SASL settings: each mistake is named by its
// variable, and a valid set reaches the Kafka connection.
func TestSecuritySettings(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"}, "KAFKA_SASL_MECHANISM"},
		{map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_PASSWORD": "p"}, "KAFKA_SASL_USERNAME: required"},
		{map[string]string{"KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "KAFKA_SASL_USERNAME": "u"}, "KAFKA_SASL_PASSWORD: required"},
		{map[string]string{"KAFKA_SASL_USERNAME": "u"}, "no mechanism"},
		{map[string]string{"KAFKA_TLS_CA_FILE": filepath.Join(dir, "missing.pem")}, "KAFKA_TLS_CA_FILE"},
		{map[string]string{"REDIS_TLS_CA_FILE": notPEM}, "REDIS_TLS_CA_FILE: " + notPEM + " holds no PEM certificate"},
		{map[string]string{"CLICKHOUSE_TLS_CERT_FILE": notPEM}, "CLICKHOUSE_TLS_CERT_FILE and CLICKHOUSE_TLS_KEY_FILE go together"},
		{map[string]string{"REDIS_USERNAME": "eprostream"}, "REDIS_PASSWORD: required with REDIS_USERNAME"},
		{map[string]string{"KAFKA_TLS": "maybe"}, `KAFKA_TLS="maybe": not true or false`},
	} {
		cfg, err := FromEnv(lookup(c.env))
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.env, err, c.want)
		}
	}

	secret := filepath.Join(dir, "kafka-password")
	if err := os.WriteFile(secret, []byte("k-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := FromEnv(lookup(map[string]string{"KAFKA_TLS": "true", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
		"KAFKA_SASL_USERNAME": "eprostream", "KAFKA_SASL_PASSWORD_FILE": secret, "REDIS_TLS_SERVER_NAME": "redis.internal"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	k := cfg.Kafka()
	if k.TLS == nil || k.SASL.Mechanism != "SCRAM-SHA-512" || k.SASL.Username != "eprostream" || k.SASL.Password != "k-secret" {
		t.Fatalf("the Kafka connection lacks its settings: TLS %v, SASL %s/%s", k.TLS != nil, k.SASL.Mechanism, k.SASL.Username)
	}
	s := k.Sarama("x")
	if !s.Net.TLS.Enable || !s.Net.SASL.Enable || s.Net.SASL.SCRAMClientGeneratorFunc == nil {
		t.Fatalf("sarama: TLS %v, SASL %v, SCRAM client %v", s.Net.TLS.Enable, s.Net.SASL.Enable, s.Net.SASL.SCRAMClientGeneratorFunc != nil)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if e := cfg.Emitters(); e.TLS == nil || e.SASL.Password != "k-secret" {
		t.Fatal("the emitters' connection lacks TLS or SASL")
	}
	if r := cfg.RedisTLSConfig(); r == nil || r.ServerName != "redis.internal" {
		t.Fatalf("Redis TLS: %+v, want on (implied by its server name) for redis.internal", r)
	}
	if cfg.ClickHouseTLSConfig() != nil {
		t.Fatal("ClickHouse TLS is on though nothing asks for it")
	}
	if strings.Contains(fmt.Sprint(cfg), "k-secret") {
		t.Fatal("the Kafka SASL password is printed")
	}
}
