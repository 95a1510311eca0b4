package gwbuild

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestBuildRunsTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a command")
	}
	bin, cleanup, err := Build("./internal/gwbuild/testdata/hello")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run %s: %v", bin, err)
	}
	if got := strings.TrimSpace(string(out)); got != "hello from the module" {
		t.Errorf("binary printed %q", got)
	}
	cleanup()
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Errorf("after cleanup, stat %s: %v; want not exist", bin, err)
	}
}

func TestBuildReportsCompileErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the compiler")
	}
	_, cleanup, err := Build("./internal/gwbuild/testdata/nosuchpkg")
	if err == nil {
		cleanup()
		t.Fatal("want an error for a package that does not exist")
	}
	if !strings.Contains(err.Error(), "nosuchpkg") {
		t.Errorf("error %q does not name the package", err)
	}
}
