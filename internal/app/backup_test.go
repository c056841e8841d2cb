package app

import (
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestParseBackupConfig(t *testing.T) {
	c, err := ParseBackupConfig([]string{"--to", "/backups/users.db"}, env(map[string]string{"USERS_DB": "/srv/users.db", "USERS_TO": "/elsewhere"}), nil)
	if err != nil || c.DB != "/srv/users.db" || c.To != "/backups/users.db" {
		t.Fatalf("%+v %v", c, err)
	}
	for name, args := range map[string][]string{
		"case=no --to":   {"--db", "/srv/users.db"},
		"case=postgres":  {"--to", "x.db", "--db", "postgres://db.example/users"},
		"case=stray arg": {"--to", "x.db", "y.db"},
	} {
		if _, err := ParseBackupConfig(args, env(nil), nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	var help strings.Builder
	if _, err := ParseBackupConfig([]string{"-h"}, env(nil), &help); !errors.Is(err, flag.ErrHelp) ||
		!strings.Contains(help.String(), "USERS_DB") || !strings.Contains(help.String(), "--to file") {
		t.Fatalf("help: %v\n%s", err, help.String())
	}
}
