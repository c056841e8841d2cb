package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/usersd/usersd/internal/store"
	"github.com/usersd/usersd/internal/store/postgres"
	"github.com/usersd/usersd/internal/store/sqlite"
)

// seedBatch is how many users one LoadUsers call gets: the generator
// makes the next batch while the store writes this one.
const seedBatch = 10_000

// openStore opens the database with the store package usersd would use,
// so the schema and every index are the service's own.
func openStore(ctx context.Context, db string) (store.Store, error) {
	if isPostgres(db) {
		return postgres.Open(ctx, db, postgres.Options{})
	}
	return sqlite.Open(ctx, db, sqlite.Options{})
}

// seed loads c.users users through the store's bulk path and reports how
// long it took and how large the database became.
func seed(ctx context.Context, c config, out io.Writer) (err error) {
	st, err := openStore(ctx, c.db)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := st.Close(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close: %w", cerr))
		}
	}()
	loader, ok := st.(store.BulkLoader)
	if !ok {
		return fmt.Errorf("the %T store has no bulk path (store.BulkLoader)", st)
	}
	// Seeded data is addressed by number: a second seed would clash with
	// the first, and another data set would not be found.
	if some, _, err := st.ListUsers(ctx, store.Page{Limit: 1}); err != nil {
		return err
	} else if len(some) > 0 {
		return errors.New("the database already holds users; seed an empty one")
	}

	start := time.Now()
	batches := make(chan []store.User, 1)
	genErr := make(chan error, 1)
	genCtx, stopGen := context.WithCancel(ctx)
	defer stopGen()
	go func() {
		defer close(batches)
		genErr <- generate(genCtx, c.users, batches)
	}()
	loaded := 0
	for batch := range batches {
		if err := loader.LoadUsers(ctx, batch); err != nil {
			// Stop the generator, and drain so it is not left blocked on a
			// send.
			stopGen()
			for range batches {
			}
			return fmt.Errorf("load users %d..%d: %w", loaded, loaded+len(batch)-1, err)
		}
		loaded += len(batch)
		if loaded%100_000 == 0 {
			fmt.Fprintf(out, "seeded %d users in %s\n", loaded, time.Since(start).Round(time.Second))
		}
	}
	if err := <-genErr; err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Fprintf(out, "seeded %d users in %s (%.0f users/s)\n", loaded, took.Round(100*time.Millisecond), float64(loaded)/took.Seconds())
	if isPostgres(c.db) {
		// What autovacuum would do on its own within minutes: statistics
		// for the planner and a visibility map, so the benchmark measures
		// a settled database rather than one autovacuum is working on.
		vstart := time.Now()
		if err := vacuumAnalyze(ctx, c.db); err != nil {
			return err
		}
		fmt.Fprintf(out, "VACUUM (ANALYZE) users in %s\n", time.Since(vstart).Round(100*time.Millisecond))
	}
	size, err := databaseSize(ctx, c.db)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "database size: %s\n", mib(size))
	return nil
}

// generate sends users 0..n-1 in batches of seedBatch.
func generate(ctx context.Context, n int, batches chan<- []store.User) error {
	for from := 0; from < n; from += seedBatch {
		batch := make([]store.User, min(seedBatch, n-from))
		for k := range batch {
			u, err := user(from + k)
			if err != nil {
				return err
			}
			batch[k] = u
		}
		select {
		case batches <- batch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func vacuumAnalyze(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `VACUUM (ANALYZE) users`); err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	return nil
}

// databaseSize is the space the database takes on disk: SQLite's file and
// its write-ahead log, or PostgreSQL's pg_database_size.
func databaseSize(ctx context.Context, db string) (int64, error) {
	if isPostgres(db) {
		conn, err := pgx.Connect(ctx, db)
		if err != nil {
			return 0, fmt.Errorf("database size: %w", err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var size int64
		if err := conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&size); err != nil {
			return 0, fmt.Errorf("database size: %w", err)
		}
		return size, nil
	}
	var size int64
	for _, path := range []string{db, db + "-wal"} {
		fi, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) && path != db {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("database size: %w", err)
		}
		size += fi.Size()
	}
	return size, nil
}

func mib(bytes int64) string { return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20)) }
