package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/eprostream/eprostream/internal/audit"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/webhooks"
)

func newWebhookCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "webhook", Short: "Create, list, inspect and delete alert webhook subscriptions (kept in Redis)"}
	store := func() (*webhooks.Store, func()) {
		rdb := connect.Redis(a.cfg)
		return webhooks.NewStore(rdb, a.cfg.RedisPrefix()), func() { _ = rdb.Close() }
	}
	var spec webhooks.Spec
	create := &cobra.Command{
		Use: "create", Short: "Subscribe an endpoint; its signing secret is printed once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			trail, err := openAudit(a)
			if err != nil {
				return err
			}
			defer trail.Close()
			s, done := store()
			defer done()
			sub, secret, err := s.Create(cmd.Context(), spec)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "id:       %s\nurl:      %s\nstudies:  %s\nseverity: %s and above\nsecret:   %s\n",
				sub.ID, sub.URL, strings.Join(sub.Studies, ","), sub.MinSeverity, secret)
			return trail.recorded(cmd.Context(), audit.WebhookCreated(sub, audit.CLI()))
		},
	}
	create.Flags().StringVar(&spec.Name, "name", "", "who the subscription is for")
	create.Flags().StringVar(&spec.URL, "url", "", "endpoint receiving POSTs (required)")
	create.Flags().StringSliceVar(&spec.Studies, "study", nil, "studies to receive (repeat, or * for all)")
	create.Flags().StringSliceVar(&spec.Sites, "site", nil, "sites to receive (default all)")
	create.Flags().StringVar(&spec.MinSeverity, "severity", "info", "lowest severity to receive: info, warning or urgent")
	list := &cobra.Command{
		Use: "list", Short: "List subscriptions with their delivery status", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, done := store()
			defer done()
			subs, err := s.List(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tURL\tSTUDIES\tSEVERITY\tDELIVERED\tFAILED TRIES\tDEAD\tLAST ERROR")
			for _, sub := range subs {
				st, _ := s.Status(cmd.Context(), sub.ID)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", sub.ID, sub.URL, strings.Join(sub.Studies, ","),
					sub.MinSeverity, st.Delivered, st.FailedAttempts, st.DeadLettered, st.LastError)
			}
			return tw.Flush()
		},
	}
	status := &cobra.Command{
		Use: "status ID", Short: "Delivery status and the latest dead letters of a subscription", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, done := store()
			defer done()
			st, err := s.Status(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "delivered %d, failed attempts %d, dead-lettered %d\nlast success %s, last failure %s %s\n",
				st.Delivered, st.FailedAttempts, st.DeadLettered, stamp(st.LastSuccessAt), stamp(st.LastFailureAt), st.LastError)
			dead, err := s.DeadLetters(cmd.Context(), args[0], 20)
			if err != nil {
				return err
			}
			for _, d := range dead {
				fmt.Fprintf(a.stdout, "dead letter: alert %s at %s: %s (%d attempts, last status %d %s)\n",
					d.AlertID, stamp(d.At), d.Reason, d.Attempts, d.LastStatus, d.LastError)
			}
			return nil
		},
	}
	del := &cobra.Command{
		Use: "delete ID", Short: "Remove a subscription", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			trail, err := openAudit(a)
			if err != nil {
				return err
			}
			defer trail.Close()
			s, done := store()
			defer done()
			sub, err := s.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			// The event first: a delete that fails after it is retried
			// with the same event id, which the warehouse stores once.
			if err := trail.record(cmd.Context(), audit.WebhookDeleted(sub, audit.CLI(), time.Now())); err != nil {
				return fmt.Errorf("not deleted: %w", err)
			}
			return s.Delete(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(create, list, status, del)
	return cmd
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.RFC3339)
}
