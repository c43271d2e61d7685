package views

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// lagMeter measures how far a goka view is behind its table topic, in
// records, once per interval: the staleness the API reports.
type lagMeter struct {
	view   *goka.View
	client sarama.Client
	topic  string
	lag    atomic.Int64
}

func (m *lagMeter) run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		m.measure(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (m *lagMeter) measure(ctx context.Context) {
	stats := m.view.Stats(ctx)
	if stats == nil {
		return
	}
	var lag int64
	for p, st := range stats.Partitions {
		hwm, err := m.client.GetOffset(m.topic, p, sarama.OffsetNewest)
		if err != nil || st == nil || st.Recovery == nil || st.Input == nil {
			return // keep the last figure
		}
		if hwm == 0 {
			continue
		}
		if behind := hwm - (max(st.Recovery.Offset, st.Input.LastOffset) + 1); behind > 0 {
			lag += behind
		}
	}
	m.lag.Store(lag)
}
