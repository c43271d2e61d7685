package main

import (
	"context"
	"fmt"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/emitters"
)

// auditTrail is epro-audit for one command-line action: opened before the
// action, so an unreachable Kafka stops it before anything changes.
type auditTrail struct{ em *emitters.AuditEmitter }

func openAudit(a *app) (*auditTrail, error) {
	em, err := emitters.NewAuditEmitter(a.cfg.Emitters(), emitters.Deps{Log: a.log})
	if err != nil {
		return nil, fmt.Errorf("audit trail (epro-audit): %w; nothing was changed", err)
	}
	return &auditTrail{em: em}, nil
}

// record writes e, waiting up to 30 s for Kafka; an error names the event.
func (t *auditTrail) record(ctx context.Context, e codecs.AuditEvent) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := t.em.Emit(ctx, e); err != nil {
		return fmt.Errorf("its audit event %s was not written to epro-audit: %w", e.AuditID, err)
	}
	return nil
}

// recorded is record for an action already done: the error says so.
func (t *auditTrail) recorded(ctx context.Context, e codecs.AuditEvent) error {
	if err := t.record(ctx, e); err != nil {
		return fmt.Errorf("done, but %w", err)
	}
	return nil
}

func (t *auditTrail) Close() { _ = t.em.Close() }
