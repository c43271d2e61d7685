package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
)

// ClientTLS is how a client verifies one service over TLS and, for mutual
// TLS, which certificate it presents. It is on when Enabled is set or any
// of its files or ServerName is.
type ClientTLS struct {
	Enabled bool
	// CAFile holds the PEM certificates the server's chain must lead to;
	// empty: the system's roots.
	CAFile string
	// CertFile and KeyFile, both or neither: the client certificate.
	CertFile, KeyFile string
	// ServerName is the name the server's certificate must carry; empty:
	// the host of the address dialled.
	ServerName string
}

// On says whether connections to the service use TLS.
func (t ClientTLS) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != ""
}

// Build returns the TLS configuration, or nil when t is off. An error names
// the variable (env is the prefix, e.g. KAFKA_TLS) whose file is wrong.
func (t ClientTLS) Build(env string) (*tls.Config, error) {
	if !t.On() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s_CA_FILE: %w", env, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s_CA_FILE: %s holds no PEM certificate", env, t.CAFile)
		}
		c.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, fmt.Errorf("%s_CERT_FILE and %s_KEY_FILE go together: set both or neither", env, env)
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s_CERT_FILE/%s_KEY_FILE: %w", env, env, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}

// build is Build for an accessor that cannot return an error: Validate has
// reported it already, so it can only mean a file changed since; the
// returned configuration then fails every handshake with that error, so
// the service's connection error names it.
func (t ClientTLS) build(env string) *tls.Config {
	c, err := t.Build(env)
	if err != nil {
		return &tls.Config{
			InsecureSkipVerify: true, // nothing is trusted: the check below refuses every server
			VerifyPeerCertificate: func([][]byte, [][]*x509.Certificate) error {
				return err
			},
		}
	}
	return c
}

// validateSecurity reports what is wrong with the services' TLS and SASL
// settings, each error naming its variable.
func (c Config) validateSecurity() []error {
	var errs []error
	for _, s := range []struct {
		env string
		tls ClientTLS
	}{{"KAFKA_TLS", c.KafkaTLS}, {"REDIS_TLS", c.RedisTLS}, {"CLICKHOUSE_TLS", c.ClickHouseTLS}} {
		if _, err := s.tls.Build(s.env); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.KafkaSASLMechanism {
	case "":
		if c.KafkaSASLUsername != "" || c.KafkaSASLPassword != "" {
			errs = append(errs, errors.New("KAFKA_SASL_MECHANISM: a SASL user or password is set but no mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"))
		}
	case kafkaconfig.SASLPlain, kafkaconfig.SASLScramSHA256, kafkaconfig.SASLScramSHA512:
		if c.KafkaSASLUsername == "" {
			errs = append(errs, fmt.Errorf("KAFKA_SASL_USERNAME: required with KAFKA_SASL_MECHANISM=%s", c.KafkaSASLMechanism))
		}
		if c.KafkaSASLPassword == "" {
			errs = append(errs, fmt.Errorf("KAFKA_SASL_PASSWORD: required with KAFKA_SASL_MECHANISM=%s (or KAFKA_SASL_PASSWORD_FILE)", c.KafkaSASLMechanism))
		}
	default:
		errs = append(errs, fmt.Errorf("KAFKA_SASL_MECHANISM: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", c.KafkaSASLMechanism))
	}
	if c.RedisUsername != "" && c.RedisPassword == "" {
		errs = append(errs, errors.New("REDIS_PASSWORD: required with REDIS_USERNAME (an ACL user), or REDIS_PASSWORD_FILE"))
	}
	return errs
}

// RedisTLSConfig is the TLS configuration of Redis clients, nil for plaintext.
func (c Config) RedisTLSConfig() *tls.Config { return c.RedisTLS.build("REDIS_TLS") }

// ClickHouseTLSConfig is the TLS configuration of ClickHouse's native
// protocol, nil for plaintext.
func (c Config) ClickHouseTLSConfig() *tls.Config { return c.ClickHouseTLS.build("CLICKHOUSE_TLS") }
