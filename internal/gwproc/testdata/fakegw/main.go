// Command fakegw stands in for the gateway in gwproc's tests: `fakegw run
// --config FILE` serves /readyz and /metrics on a free loopback port, logs a
// ready line like the gateway's, starts one child (`fakegw child FILE`) in
// its process group, and exits 0 on SIGTERM. The child writes FILE (the
// config's path + ".child-term") when it gets SIGTERM. A config holding
// "exit-early" makes it exit 3 before it is ready.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "child" {
		child(os.Args[2])
		return
	}
	if len(os.Args) != 4 || os.Args[1] != "run" || os.Args[2] != "--config" {
		fmt.Fprintln(os.Stderr, "usage: fakegw run --config FILE")
		os.Exit(2)
	}
	cfg, err := os.ReadFile(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if strings.Contains(string(cfg), "exit-early") {
		fmt.Fprintln(os.Stderr, `level=ERROR msg="config says exit-early"`)
		os.Exit(3)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ready") })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "# TYPE x_total counter\nx_total{destination=\"a\"} 2\nx_total{destination=\"b\"} 3\nx_total_other 7\n")
	})
	go func() { _ = http.Serve(ln, mux) }()
	self, _ := os.Executable()
	// The child's output goes nowhere: it must not hold the test's pipe.
	kid := exec.Command(self, "child", os.Args[3]+".child-term")
	up, err := kid.StdoutPipe()
	if err == nil {
		err = kid.Start()
	}
	if err == nil {
		// The child says when it handles SIGTERM.
		_, err = up.Read(make([]byte, 1))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "level=INFO msg=\"gateway ready\" otlp_grpc=\"\" otlp_http=127.0.0.1:9 http=%s storage=none child=%d\n", ln.Addr(), kid.Process.Pid)
	<-term
	fmt.Fprintln(os.Stderr, `level=INFO msg="gateway stopped cleanly"`)
	os.Exit(0)
}

// child waits for SIGTERM and writes marker when it gets it.
func child(marker string) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Println("up")
	<-term
	_ = os.WriteFile(marker, []byte("SIGTERM\n"), 0o600)
}
