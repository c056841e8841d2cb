// Command usersd is the users service: gRPC and REST/JSON over one store.
//
//	usersd serve [flags]   run the service (see `usersd serve -h`)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/usersd/usersd/internal/app"
)

const usage = `usage: usersd <command> [flags]

commands:
  serve   run the gRPC and REST servers (usersd serve -h for flags)
`

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

func run(args []string, getenv func(string) string, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], getenv, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "usersd: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func serve(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := app.ParseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "usersd serve: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := app.Run(ctx, cfg, log, nil); err != nil {
		log.Error("usersd stopped with an error", "error", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
