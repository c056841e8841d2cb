package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// cli is a subcommand's flag set, with what its help says and where in the
// environment its flags are read from.
type cli struct {
	fs    *flag.FlagSet
	usage string // the help's first lines
	// env names a flag's environment variable; "" for a flag without one.
	env func(flag string) string
	// envOnly lists settings only the environment gives: name, help.
	envOnly [][2]string
}

// newCLI returns a cli whose flag set prints nothing itself: help goes
// where parse is told, and errors are returned, to be printed once.
func newCLI(name, usage string, env func(string) string) *cli {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &cli{fs: fs, usage: usage, env: env}
}

// parse reads args, then fills every flag not given from its environment
// variable. On -h or --help it writes the help to help and returns
// flag.ErrHelp. A value that does not parse is one error naming it as the
// operator wrote it (--max-body-bytes="abc" or USERS_MAX_BODY_BYTES="abc")
// and saying what is expected; the returned setting names a flag's value
// the same way, for the checks that follow.
func (c *cli) parse(args []string, getenv func(string) string, help io.Writer) (setting func(flag string) string, err error) {
	fromFlag := map[string]string{} // flag name → value as written
	fromEnv := map[string]string{}
	var refused error // the first value the flag package refused
	c.fs.VisitAll(func(f *flag.Flag) {
		f.Value = reported{Value: f.Value, name: f.Name, given: fromFlag, refused: &refused}
	})
	err = c.fs.Parse(args)
	c.fs.VisitAll(func(f *flag.Flag) { f.Value = f.Value.(reported).Value })
	switch {
	case errors.Is(err, flag.ErrHelp):
		c.printHelp(help)
		return nil, err
	case refused != nil:
		return nil, refused
	case err != nil:
		return nil, fmt.Errorf("%w (%s -h lists the flags)", err, c.fs.Name())
	case c.fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q (%s -h lists the flags)", c.fs.Arg(0), c.fs.Name())
	}
	var errs []error
	c.fs.VisitAll(func(f *flag.Flag) {
		env := c.env(f.Name)
		if _, set := fromFlag[f.Name]; set || env == "" {
			return
		}
		if v := getenv(env); v != "" {
			fromEnv[f.Name] = v
			if err := setValue(f.Value, env, v); err != nil {
				errs = append(errs, err)
			}
		}
	})
	setting = func(name string) string {
		if v, ok := fromEnv[name]; ok {
			return fmt.Sprintf("%s=%q", c.env(name), v)
		}
		if v, ok := fromFlag[name]; ok {
			return fmt.Sprintf("--%s=%q", name, v)
		}
		return fmt.Sprintf("--%s=%q (the default)", name, c.fs.Lookup(name).DefValue)
	}
	return setting, errors.Join(errs...)
}

// reported wraps a flag's value while the flag package parses the
// command line, to record what was written and to report a refused value
// clearly (the flag package would say "parse error").
type reported struct {
	flag.Value
	name    string
	given   map[string]string
	refused *error
}

func (r reported) Set(s string) error {
	r.given[r.name] = s
	err := setValue(r.Value, "--"+r.name, s)
	if err != nil && *r.refused == nil {
		*r.refused = err
	}
	return err
}

// IsBoolFlag keeps `--db-quick-check` (no value) working for bool flags.
func (r reported) IsBoolFlag() bool {
	b, ok := r.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// setValue sets v to s, given as source; an error names both and says
// what is expected.
func setValue(v flag.Value, source, s string) error {
	err := v.Set(s)
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s=%q: %s", source, s, expected(v, source, s, err))
}

// expected says what a flag takes, for the flag package's own value
// types; values of ours say it in their errors.
func expected(v flag.Value, source, s string, err error) string {
	g, ok := v.(flag.Getter)
	if !ok {
		return err.Error()
	}
	switch g.Get().(type) {
	case int, int64, uint, uint64:
		if _, perr := strconv.ParseInt(s, 0, 64); errors.Is(perr, strconv.ErrRange) {
			return "out of range"
		}
		if strings.HasSuffix(strings.ToLower(source), "bytes") {
			return "not a whole number of bytes"
		}
		return "not a whole number"
	case float64:
		return "not a number"
	case bool:
		return "not true or false"
	case time.Duration:
		return "not a duration such as 30s, 5m or 1h30m"
	case *slog.Level:
		return "not a log level: debug, info, warn or error"
	}
	return err.Error()
}

func isString(v any) bool {
	_, ok := v.(string)
	return ok
}

// printHelp writes the usage and every flag with its environment variable
// and default.
func (c *cli) printHelp(w io.Writer) {
	fmt.Fprintf(w, "%s\n", c.usage)
	type entry struct{ name, env, usage string }
	var entries []entry
	width := 0
	c.fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		name := "--" + f.Name
		if kind != "" {
			name += " " + kind
		}
		if def := f.DefValue; def != "" && def != "0" && def != "false" && def != "[]" {
			if g, ok := f.Value.(flag.Getter); ok && isString(g.Get()) {
				def = strconv.Quote(def)
			}
			usage += " (default " + def + ")"
		}
		entries = append(entries, entry{name, c.env(f.Name), usage})
		width = max(width, len(name))
	})
	for _, e := range entries {
		line := strings.TrimRight(fmt.Sprintf("  %-*s  %s", width, e.name, e.env), " ")
		fmt.Fprintf(w, "%s\n        %s\n", line, e.usage)
	}
	if len(c.envOnly) > 0 {
		fmt.Fprintf(w, "\nenvironment only:\n")
		for _, e := range c.envOnly {
			fmt.Fprintf(w, "  %s\n        %s\n", e[0], e[1])
		}
	}
}
