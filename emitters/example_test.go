package emitters_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/internal/config"
)

// A Go producer sends one diary entry and learns once Kafka has it.
func ExampleSubmissionEmitter() {
	cfg, _ := config.FromOSEnv()
	em, err := emitters.NewSubmissionEmitter(cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
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
