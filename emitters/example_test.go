package emitters_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/emitters"
)

// A Go producer sends one diary entry and learns once Kafka has it.
func ExampleSubmissionEmitter() {
	cfg := emitters.Config{Brokers: []string{"127.0.0.1:9092"}} // and TopicPrefix, as given to migrate
	em, err := emitters.NewSubmissionEmitter(cfg, emitters.Deps{Log: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer em.Close()
	err = em.Emit(context.Background(), codecs.Submission{
		MessageID: "01J9Z3K7Q2", StudyID: "ONC-301", SiteID: "SITE-012", SubjectID: "ONC-301-012-0042",
		Instrument: "PRO-CTCAE", SubmittedAt: time.Now().Format(time.RFC3339),
		Items: []codecs.Item{{Code: "PAIN_SEVERITY", Value: codecs.Number(3)}},
	})
	fmt.Println(err)
}
