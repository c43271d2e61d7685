// Command eprostream is the one binary of eprostream; its subcommands run the
// processor groups, the gateway, the views and the operator tools.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// go-redis logs dial failures itself; ours carry the same errors with context.
	redis.SetLogger(quietRedis{})
	if err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "eprostream:", err)
		os.Exit(1)
	}
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...interface{}) {}
