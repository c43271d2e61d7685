package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/eprostream/eprostream/internal/audit"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
)

func newAPIKeyCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "apikey",
		Short: "Create, list and revoke the gateway's API keys (stored hashed in Redis)",
	}
	var spec apikeys.Spec
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a key; its token is printed once and cannot be shown again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			trail, err := openAudit(a)
			if err != nil {
				return err
			}
			defer trail.Close()
			rdb := connect.Redis(a.cfg)
			defer rdb.Close()
			k, token, err := apikeys.NewStore(rdb, a.cfg.RedisPrefix()).Create(cmd.Context(), spec)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "id:       %s\nstudies:  %s\nroles:    %s\nexpires:  %s\ntoken:    %s\n",
				k.ID, strings.Join(k.Studies, ","), strings.Join(k.Roles, ","), k.ExpiresAt.Format(time.RFC3339), token)
			return trail.recorded(cmd.Context(), audit.KeyCreated(k, audit.CLI()))
		},
	}
	create.Flags().StringVar(&spec.Name, "name", "", "who the key is for (required)")
	create.Flags().StringSliceVar(&spec.Studies, "study", nil, "study the key may act for (repeat, or * for all)")
	create.Flags().StringSliceVar(&spec.Roles, "role", []string{apikeys.RoleSubmit}, "submit, operate and/or read")
	create.Flags().IntVar(&spec.RatePerSec, "rate", 0, "submissions/s for this key (0: the gateway's --rate-per-key)")
	create.Flags().DurationVar(&spec.Lifetime, "lifetime", 365*24*time.Hour, "how long the key is valid")

	list := &cobra.Command{
		Use:   "list",
		Short: "List keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rdb := connect.Redis(a.cfg)
			defer rdb.Close()
			keys, err := apikeys.NewStore(rdb, a.cfg.RedisPrefix()).List(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTUDIES\tROLES\tRATE\tEXPIRES\tSTATE")
			for _, k := range keys {
				state := "active"
				switch {
				case !k.RevokedAt.IsZero():
					state = "revoked " + k.RevokedAt.Format(time.RFC3339)
				case time.Now().After(k.ExpiresAt):
					state = "expired"
				}
				rate := "default"
				if k.RatePerSec > 0 {
					rate = fmt.Sprintf("%d/s", k.RatePerSec)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, strings.Join(k.Studies, ","),
					strings.Join(k.Roles, ","), rate, k.ExpiresAt.Format("2006-01-02"), state)
			}
			return tw.Flush()
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key; gateways refuse it within seconds, without a restart",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			trail, err := openAudit(a)
			if err != nil {
				return err
			}
			defer trail.Close()
			rdb := connect.Redis(a.cfg)
			defer rdb.Close()
			k, err := apikeys.NewStore(rdb, a.cfg.RedisPrefix()).Revoke(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("revoke %s: %w", args[0], err)
			}
			fmt.Fprintf(a.stdout, "revoked %s (%s) at %s\n", k.ID, k.Name, k.RevokedAt.Format(time.RFC3339))
			return trail.recorded(cmd.Context(), audit.KeyRevoked(k, audit.CLI()))
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
