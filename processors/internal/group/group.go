// Package group holds what every processor group's constructor shares: the
// Kafka side of its configuration and the registration of its metrics.
package group

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eprostream/eprostream/internal/kafka/topics"
)

// Config is where a group runs. Brokers may be empty only under goka's
// tester (goka.WithTester), which never dials.
type Config struct {
	Brokers []string
	Names   topics.Names // topic names, with the environment's prefix
}

// Validate says what is wrong with c; group is the group's name. Brokers
// are goka's to check: under its tester none are needed.
func (c Config) Validate(group string) error {
	if c.Names.Submissions == "" {
		return fmt.Errorf("%s: config: %w", group, errors.New("Names is unset (use topics.NewNames)"))
	}
	return nil
}

// Register registers cs with reg (nil: not registered), returning an error,
// never panicking, when one is registered already.
func Register(group string, reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("%s: metrics: %w", group, err)
		}
	}
	return nil
}
