package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/kern-agents/trace-gateway/internal/gwproc"
)

// pgCluster is a private PostgreSQL server (initdb into the test's temp
// dir) that a test may stop and start at will without disturbing the shared
// test server.
type pgCluster struct {
	t      *testing.T
	bin    string // directory of initdb, pg_ctl, postgres
	data   string
	log    string
	port   int
	asUser string // run the binaries as this user (PostgreSQL refuses root)
}

// skipOrFail skips the test, or fails it when CI=true: in CI every scenario
// must run.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// pgBinDir finds the newest PostgreSQL server binaries.
func pgBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no initdb under /usr/lib/postgresql/*/bin or on PATH")
}

// newPGCluster initialises and starts a private cluster on a free port; it is
// stopped when the test ends.
func newPGCluster(t *testing.T) *pgCluster {
	t.Helper()
	bin, err := pgBinDir()
	if err != nil {
		skipOrFail(t, "private PostgreSQL cluster: %v", err)
	}
	c := &pgCluster{t: t, bin: bin}
	base := t.TempDir()
	dir := filepath.Join(base, "pg")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// PostgreSQL will not run as root: run it as the postgres user,
		// which must be able to reach its directory.
		u, err := user.Lookup("postgres")
		if err != nil {
			skipOrFail(t, "private PostgreSQL cluster: running as root and there is no postgres user: %v", err)
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			skipOrFail(t, "private PostgreSQL cluster: running as root and runuser is missing: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			skipOrFail(t, "private PostgreSQL cluster: chown %s: %v", dir, err)
		}
		// t.TempDir and its parent are private to us; let postgres pass.
		for _, p := range []string{base, filepath.Dir(base)} {
			if err := os.Chmod(p, 0o711); err != nil {
				skipOrFail(t, "private PostgreSQL cluster: chmod %s: %v", p, err)
			}
		}
		c.asUser = "postgres"
	}
	c.data = filepath.Join(dir, "data")
	c.log = filepath.Join(dir, "server.log")
	port, err := strconv.Atoi(strings.TrimPrefix(gwproc.FreeAddr(t), "127.0.0.1:"))
	if err != nil {
		t.Fatal(err)
	}
	c.port = port
	if out, err := c.run("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		skipOrFail(t, "private PostgreSQL cluster: initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nmax_connections = 50\nshared_buffers = 32MB\nfsync = off\n", port, dir)
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(conf)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(func() {
		_, _ = c.run("pg_ctl", "stop", "-D", c.data, "-m", "immediate", "-w", "-t", "30")
		if t.Failed() {
			if b, err := os.ReadFile(c.log); err == nil {
				t.Logf("private PostgreSQL log:\n%s", tail(b, 16<<10))
			}
		}
	})
	return c
}

// DSN connects to the cluster's postgres database.
func (c *pgCluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Start starts the server and waits until it accepts connections.
func (c *pgCluster) Start() {
	c.t.Helper()
	if out, err := c.run("pg_ctl", "start", "-D", c.data, "-l", c.log, "-w", "-t", "60"); err != nil {
		b, _ := os.ReadFile(c.log)
		c.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, tail(b, 8<<10))
	}
}

// Stop shuts the server down the way an operator restarting it would
// (fast: open transactions are rolled back, clients disconnected).
func (c *pgCluster) Stop() {
	c.t.Helper()
	if out, err := c.run("pg_ctl", "stop", "-D", c.data, "-m", "fast", "-w", "-t", "60"); err != nil {
		c.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

func (c *pgCluster) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
