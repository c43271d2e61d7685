// Package config holds eprostream's runtime configuration: one struct, its
// defaults, the environment variables and flags that set it, and Validate.
// Every subcommand reads its configuration from here and nowhere else.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"

	"github.com/spf13/pflag"
)

// Config is the configuration shared by every subcommand.
type Config struct {
	// Env names the deployment (dev, staging, prod); it scopes Redis keys.
	Env string
	// KafkaBrokers are the bootstrap brokers, host:port.
	KafkaBrokers []string
	// TopicPrefix is prepended to every topic and group name so several
	// environments can share one cluster.
	TopicPrefix string
	// Partitions and ReplicationFactor apply to topics `migrate` creates.
	Partitions        int
	ReplicationFactor int
	// RedisAddr is host:port of Redis; RedisPassword may be empty.
	RedisAddr     string
	RedisPassword string
	// ClickHouseAddr is host:port of ClickHouse's native protocol.
	ClickHouseAddr     string
	ClickHouseDatabase string
	ClickHouseUser     string
	ClickHousePassword string
	// AdminAddr serves /healthz, /readyz and /metrics; empty disables it.
	AdminAddr string
	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel  string
	LogFormat string
	// DialTimeout bounds each connection attempt to Kafka, Redis and ClickHouse.
	DialTimeout time.Duration
	// StudiesFile is the study catalogue (studies, sites, instruments,
	// enrolment policy); every process reads the same file. Empty: every
	// study and site, the built-in instruments, first-report enrolment.
	StudiesFile string
	// TLSCertFile and TLSKeyFile, both or neither, make the ingest API and
	// the views serve HTTPS; the pair is reloaded when the files change or
	// on SIGHUP. The admin endpoint stays plain HTTP (operators' port).
	TLSCertFile string
	TLSKeyFile  string

	// How the clients reach each service securely (README, "Production
	// connections"): TLS for Kafka, Redis and ClickHouse, SASL for Kafka,
	// an ACL user for Redis.
	KafkaTLS           ClientTLS
	KafkaSASLMechanism string
	KafkaSASLUsername  string
	KafkaSASLPassword  string
	RedisUsername      string
	RedisTLS           ClientTLS
	ClickHouseTLS      ClientTLS
}

// Default returns the configuration for the local stack that `make up` starts.
func Default() Config {
	return Config{
		Env:                "dev",
		KafkaBrokers:       []string{"127.0.0.1:9092"},
		TopicPrefix:        "",
		Partitions:         12,
		ReplicationFactor:  1,
		RedisAddr:          "127.0.0.1:6379",
		ClickHouseAddr:     "127.0.0.1:9000",
		ClickHouseDatabase: "eprostream",
		ClickHouseUser:     "default",
		AdminAddr:          "127.0.0.1:9464",
		LogLevel:           "info",
		LogFormat:          "text",
		DialTimeout:        5 * time.Second,
	}
}

// envVar ties one environment variable to one flag.
type envVar struct {
	env, flag, usage string
	target           any // *string, *[]string, *int, *bool, *time.Duration
	// secret: also read from the file named by env+"_FILE" (how container
	// secrets are mounted), and never shown: not as a flag's default in
	// --help, not when the Config is printed or logged.
	secret bool
}

func (c *Config) vars() []envVar {
	return []envVar{
		{"EPRO_ENV", "env", "deployment name; scopes Redis keys (eprostream:{env}:…)", &c.Env, false},
		{"KAFKA_BROKERS", "kafka-brokers", "Kafka bootstrap brokers, comma-separated host:port", &c.KafkaBrokers, false},
		{"TOPIC_PREFIX", "topic-prefix", "prefix for every topic and group name", &c.TopicPrefix, false},
		{"TOPIC_PARTITIONS", "partitions", "partitions of the topics migrate creates", &c.Partitions, false},
		{"TOPIC_REPLICATION", "replication", "replication factor of the topics migrate creates", &c.ReplicationFactor, false},
		{"REDIS_ADDR", "redis-addr", "Redis host:port", &c.RedisAddr, false},
		{"REDIS_PASSWORD", "redis-password", "Redis password (prefer REDIS_PASSWORD_FILE or the environment variable)", &c.RedisPassword, true},
		{"CLICKHOUSE_ADDR", "clickhouse-addr", "ClickHouse native protocol host:port", &c.ClickHouseAddr, false},
		{"CLICKHOUSE_DATABASE", "clickhouse-database", "ClickHouse database", &c.ClickHouseDatabase, false},
		{"CLICKHOUSE_USER", "clickhouse-user", "ClickHouse user", &c.ClickHouseUser, false},
		{"CLICKHOUSE_PASSWORD", "clickhouse-password", "ClickHouse password (prefer CLICKHOUSE_PASSWORD_FILE or the environment variable)", &c.ClickHousePassword, true},
		{"ADMIN_ADDR", "admin-addr", "address of /healthz, /readyz and /metrics; empty disables", &c.AdminAddr, false},
		{"LOG_LEVEL", "log-level", "debug, info, warn or error", &c.LogLevel, false},
		{"LOG_FORMAT", "log-format", "text or json", &c.LogFormat, false},
		{"DIAL_TIMEOUT", "dial-timeout", "timeout of each connection attempt", &c.DialTimeout, false},
		{"TLS_CERT_FILE", "tls-cert", "PEM certificate (chain) of the ingest API and the views: HTTPS, reloaded on change or SIGHUP", &c.TLSCertFile, false},
		{"TLS_KEY_FILE", "tls-key", "PEM private key of --tls-cert", &c.TLSKeyFile, false},
		{"KAFKA_TLS", "kafka-tls", "connect to Kafka over TLS (implied by any KAFKA_TLS_* setting)", &c.KafkaTLS.Enabled, false},
		{"KAFKA_TLS_CA_FILE", "kafka-tls-ca", "PEM CA certificates Kafka's brokers are verified against; empty: the system's", &c.KafkaTLS.CAFile, false},
		{"KAFKA_TLS_CERT_FILE", "kafka-tls-cert", "PEM client certificate for mutual TLS with Kafka", &c.KafkaTLS.CertFile, false},
		{"KAFKA_TLS_KEY_FILE", "kafka-tls-key", "PEM private key of --kafka-tls-cert", &c.KafkaTLS.KeyFile, false},
		{"KAFKA_TLS_SERVER_NAME", "kafka-tls-server-name", "name the brokers' certificates carry, if not their host", &c.KafkaTLS.ServerName, false},
		{"KAFKA_SASL_MECHANISM", "kafka-sasl-mechanism", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL", &c.KafkaSASLMechanism, false},
		{"KAFKA_SASL_USERNAME", "kafka-sasl-username", "Kafka SASL user", &c.KafkaSASLUsername, false},
		{"KAFKA_SASL_PASSWORD", "kafka-sasl-password", "Kafka SASL password (prefer KAFKA_SASL_PASSWORD_FILE or the environment variable)", &c.KafkaSASLPassword, true},
		{"REDIS_USERNAME", "redis-username", "Redis ACL user; empty: the default user", &c.RedisUsername, false},
		{"REDIS_TLS", "redis-tls", "connect to Redis over TLS (implied by any REDIS_TLS_* setting)", &c.RedisTLS.Enabled, false},
		{"REDIS_TLS_CA_FILE", "redis-tls-ca", "PEM CA certificates Redis is verified against; empty: the system's", &c.RedisTLS.CAFile, false},
		{"REDIS_TLS_CERT_FILE", "redis-tls-cert", "PEM client certificate for mutual TLS with Redis", &c.RedisTLS.CertFile, false},
		{"REDIS_TLS_KEY_FILE", "redis-tls-key", "PEM private key of --redis-tls-cert", &c.RedisTLS.KeyFile, false},
		{"REDIS_TLS_SERVER_NAME", "redis-tls-server-name", "name Redis's certificate carries, if not its host", &c.RedisTLS.ServerName, false},
		{"CLICKHOUSE_TLS", "clickhouse-tls", "connect to ClickHouse's secure native port over TLS (implied by any CLICKHOUSE_TLS_* setting)", &c.ClickHouseTLS.Enabled, false},
		{"CLICKHOUSE_TLS_CA_FILE", "clickhouse-tls-ca", "PEM CA certificates ClickHouse is verified against; empty: the system's", &c.ClickHouseTLS.CAFile, false},
		{"CLICKHOUSE_TLS_CERT_FILE", "clickhouse-tls-cert", "PEM client certificate for mutual TLS with ClickHouse", &c.ClickHouseTLS.CertFile, false},
		{"CLICKHOUSE_TLS_KEY_FILE", "clickhouse-tls-key", "PEM private key of --clickhouse-tls-cert", &c.ClickHouseTLS.KeyFile, false},
		{"CLICKHOUSE_TLS_SERVER_NAME", "clickhouse-tls-server-name", "name ClickHouse's certificate carries, if not its host", &c.ClickHouseTLS.ServerName, false},
		{"STUDIES_FILE", "studies-file", "study catalogue (YAML): studies, sites, instruments, enrolment policy; the same file for every process; empty accepts every study", &c.StudiesFile, false},
	}
}

// FromEnv returns Default overridden by the environment (lookup is os.LookupEnv
// in production, a map in tests). A variable that cannot be parsed is an error
// naming it. A secret (a password) may instead come from the file named by
// its _FILE variable; its trailing line break is dropped.
func FromEnv(lookup func(string) (string, bool)) (Config, error) {
	c := Default()
	var errs []error
	for _, v := range c.vars() {
		raw, ok := lookup(v.env)
		if v.secret {
			if path, fromFile := lookup(v.env + "_FILE"); fromFile {
				if ok {
					errs = append(errs, fmt.Errorf("%s and %s_FILE are both set: set one", v.env, v.env))
					continue
				}
				b, err := os.ReadFile(path)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s_FILE: %w", v.env, err))
					continue
				}
				raw, ok = strings.TrimRight(string(b), "\r\n"), true
			}
		}
		if !ok {
			continue
		}
		if v.secret {
			*v.target.(*string) = raw // kept as written, and never quoted in an error
			continue
		}
		if err := set(v.target, raw); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", v.env, raw, err))
		}
	}
	return c, errors.Join(errs...)
}

// FromOSEnv is FromEnv over the process environment.
func FromOSEnv() (Config, error) { return FromEnv(os.LookupEnv) }

func set(target any, raw string) error {
	switch t := target.(type) {
	case *string:
		*t = strings.TrimSpace(raw)
	case *[]string:
		*t = splitList(raw)
	case *int:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil {
			return errors.New("not a whole number")
		}
		*t = n
	case *bool:
		b, err := strconv.ParseBool(strings.TrimSpace(raw))
		if err != nil {
			return errors.New("not true or false")
		}
		*t = b
	case *time.Duration:
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return errors.New("not a duration (e.g. 5s, 250ms)")
		}
		*t = d
	default:
		return fmt.Errorf("unsupported type %T", target)
	}
	return nil
}

func splitList(raw string) []string {
	var out []string
	for _, s := range strings.Split(raw, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// RegisterFlags binds every setting to a flag on fs whose default is the
// current value (so flags override the environment, which overrides defaults).
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	for _, v := range c.vars() {
		usage := fmt.Sprintf("%s (env %s)", v.usage, v.env)
		switch t := v.target.(type) {
		case *string:
			if v.secret {
				// --help shows a flag's default: a secret's is not shown.
				current := *t
				fs.StringVar(t, v.flag, "", usage+" (or "+v.env+"_FILE)")
				*t = current
				continue
			}
			fs.StringVar(t, v.flag, *t, usage)
		case *[]string:
			fs.StringSliceVar(t, v.flag, *t, usage)
		case *int:
			fs.IntVar(t, v.flag, *t, usage)
		case *bool:
			fs.BoolVar(t, v.flag, *t, usage)
		case *time.Duration:
			fs.DurationVar(t, v.flag, *t, usage)
		}
	}
}

var (
	envName     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	topicPrefix = regexp.MustCompile(`^[a-zA-Z0-9._-]{0,100}$`)
	dbName      = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,63}$`)
)

// Validate reports every invalid setting at once, each naming its variable.
func (c Config) Validate() error {
	var errs []error
	bad := func(env, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, a...)))
	}
	if !envName.MatchString(c.Env) {
		bad("EPRO_ENV", "%q must be 1-32 lowercase letters, digits or dashes", c.Env)
	}
	if len(c.KafkaBrokers) == 0 {
		bad("KAFKA_BROKERS", "at least one broker is required")
	}
	for _, b := range c.KafkaBrokers {
		if err := hostPort(b); err != nil {
			bad("KAFKA_BROKERS", "%q: %v", b, err)
		}
	}
	if !topicPrefix.MatchString(c.TopicPrefix) {
		bad("TOPIC_PREFIX", "%q may hold only letters, digits, '.', '_' and '-' (at most 100)", c.TopicPrefix)
	}
	if c.Partitions < 1 || c.Partitions > 1000 {
		bad("TOPIC_PARTITIONS", "%d is outside 1..1000", c.Partitions)
	}
	if c.ReplicationFactor < 1 || c.ReplicationFactor > 10 {
		bad("TOPIC_REPLICATION", "%d is outside 1..10", c.ReplicationFactor)
	}
	if err := hostPort(c.RedisAddr); err != nil {
		bad("REDIS_ADDR", "%q: %v", c.RedisAddr, err)
	}
	if err := hostPort(c.ClickHouseAddr); err != nil {
		bad("CLICKHOUSE_ADDR", "%q: %v", c.ClickHouseAddr, err)
	}
	if !dbName.MatchString(c.ClickHouseDatabase) {
		bad("CLICKHOUSE_DATABASE", "%q must start with a letter or '_' and hold only letters, digits and '_'", c.ClickHouseDatabase)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("TLS_CERT_FILE", "%s", "and TLS_KEY_FILE go together: set both (--tls-cert, --tls-key) or neither")
	}
	if c.AdminAddr != "" {
		if err := hostPort(c.AdminAddr); err != nil {
			bad("ADMIN_ADDR", "%q: %v", c.AdminAddr, err)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "%q is not one of debug, info, warn, error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("LOG_FORMAT", "%q is not one of text, json", c.LogFormat)
	}
	if c.DialTimeout <= 0 || c.DialTimeout > time.Minute {
		bad("DIAL_TIMEOUT", "%s is outside (0, 1m]", c.DialTimeout)
	}
	errs = append(errs, c.validateSecurity()...)
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

func hostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port")
	}
	if host == "" {
		return errors.New("host is empty")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not in 1..65535", port)
	}
	return nil
}

// redacted is c with its secrets replaced by "[set]" (or left empty).
func (c Config) redacted() Config {
	r := c
	for _, v := range r.vars() {
		if t, ok := v.target.(*string); ok && v.secret && *t != "" {
			*t = "[set]"
		}
	}
	return r
}

// String prints c without its secrets.
func (c Config) String() string {
	type plain Config // no String method: no recursion
	return fmt.Sprintf("%+v", plain(c.redacted()))
}

// LogValue logs c without its secrets.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// RedisPrefix is the namespace of every Redis key of this deployment.
func (c Config) RedisPrefix() string { return "eprostream:" + c.Env + ":" }

// Kafka is how this process's Kafka clients connect.
func (c Config) Kafka() kafkaconfig.Conn {
	return kafkaconfig.Conn{Brokers: c.KafkaBrokers, DialTimeout: c.DialTimeout, Replication: c.ReplicationFactor,
		TLS: c.KafkaTLS.build("KAFKA_TLS"), SASL: c.kafkaSASL()}
}

func (c Config) kafkaSASL() kafkaconfig.SASL {
	return kafkaconfig.SASL{Mechanism: c.KafkaSASLMechanism, Username: c.KafkaSASLUsername, Password: c.KafkaSASLPassword}
}

// Emitters is the emitters' configuration for this environment.
func (c Config) Emitters() emitters.Config {
	return emitters.Config{Brokers: c.KafkaBrokers, TopicPrefix: c.TopicPrefix, DialTimeout: c.DialTimeout,
		TLS: c.KafkaTLS.build("KAFKA_TLS"), SASL: emitters.SASL(c.kafkaSASL())}
}
