// Command testplugin is a plugin for the pluginhost tests. It is built once
// and linked under several names; the name it runs under picks a way to
// misbehave. Under its own name it is a working exporter steered by config.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-plugin"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"

	"github.com/kern-agents/trace-gateway/plugins"
	"github.com/kern-agents/trace-gateway/plugins/pluginpb"
)

// realStderr is fd 2 before go-plugin swaps os.Stderr for a pipe.
var realStderr = os.Stderr

func main() {
	switch filepath.Base(os.Args[0]) {
	case "garbage-stdout":
		fmt.Println("hello from a chatty init")
		plugins.Serve(&exporter{})
	case "exit-at-once":
		fmt.Fprintln(os.Stderr, "fatal: license file missing")
		os.Exit(3)
	case "wrong-version":
		serveRaw(2, &rawServer{})
	case "malformed":
		serveRaw(plugins.ProtocolVersion, &rawServer{})
	case "no-service":
		serveRaw(plugins.ProtocolVersion, nil)
	default:
		plugins.Serve(&exporter{})
	}
}

// serveRaw serves with go-plugin directly, bypassing plugins.Serve.
func serveRaw(version int, srv pluginpb.ExporterServer) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  uint(version),
			MagicCookieKey:   plugins.MagicCookieKey,
			MagicCookieValue: plugins.MagicCookieValue,
		},
		Plugins:    plugin.PluginSet{"exporter": &rawPlugin{srv: srv}},
		GRPCServer: plugin.DefaultGRPCServer,
	})
}

type rawPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv pluginpb.ExporterServer
}

func (p *rawPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.srv != nil {
		pluginpb.RegisterExporterServer(s, p.srv)
	}
	return nil
}

func (p *rawPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, errors.New("not a client")
}

// rawServer answers Export with a result code that does not exist.
type rawServer struct {
	pluginpb.UnimplementedExporterServer
}

func (rawServer) Configure(context.Context, *pluginpb.ConfigureRequest) (*pluginpb.ConfigureResponse, error) {
	return &pluginpb.ConfigureResponse{}, nil
}

func (rawServer) Export(context.Context, *pluginpb.ExportRequest) (*pluginpb.ExportResponse, error) {
	return &pluginpb.ExportResponse{Result: pluginpb.Result(99), Message: "???"}, nil
}

// exporter appends the name of every span it accepts to the file "out".
//
// Config keys: out (required); hang_configure; block_once (a marker file:
// the first Export creates it and then blocks forever); result
// ("retryable" or "permanent", with retry_after_ms); panic_on (a span name
// that makes Export panic); exit_in_export; noisy (print junk everywhere);
// reject (answer Configure with field errors).
type exporter struct {
	cfg map[string]any
	out string
}

func (e *exporter) Configure(ctx context.Context, cfg map[string]any) error {
	e.cfg = cfg
	if cfg["hang_configure"] == true {
		select {}
	}
	if cfg["reject"] == true {
		var ce plugins.ConfigError
		ce.Add("endpoint", "is required")
		ce.Add("tls.ca_file", "file %s does not exist", "/nope.pem")
		return ce.Err()
	}
	out, _ := cfg["out"].(string)
	if out == "" {
		return errors.New("out is required")
	}
	e.out = out
	if cfg["noisy"] == true {
		e.noise("configure")
	}
	// Echo the config so tests can check the types that arrived.
	slog.Info("configured", "config", fmt.Sprintf("%#v", cfg))
	return nil
}

// noise writes to every channel a plugin has.
func (e *exporter) noise(when string) {
	fmt.Println("stdout junk during " + when)
	fmt.Fprintln(os.Stderr, "stderr junk during "+when)
	fmt.Fprintln(realStderr, `{"@message": 5, "@level": "error"}`)
	fmt.Fprintln(realStderr, "raw line on fd 2 during "+when)
	slog.Warn("structured during "+when, "answer", 42)
}

func (e *exporter) Export(ctx context.Context, td ptrace.Traces) error {
	if e.cfg["noisy"] == true {
		e.noise("export")
	}
	if marker, _ := e.cfg["block_once"].(string); marker != "" {
		if _, err := os.Stat(marker); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(marker, []byte("blocking"), 0o644); err != nil {
				return err
			}
			select {} // hang until killed
		}
	}
	if e.cfg["exit_in_export"] == true {
		os.Exit(4)
	}
	var names []string
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				if name := spans.At(k).Name(); name == e.cfg["panic_on"] {
					panic("boom on " + name)
				} else {
					names = append(names, name)
				}
			}
		}
	}
	switch e.cfg["result"] {
	case "retryable":
		ms, _ := e.cfg["retry_after_ms"].(int)
		return plugins.Retryable(errors.New("vendor throttled us"), time.Duration(ms)*time.Millisecond)
	case "permanent":
		return plugins.Permanent(errors.New("vendor rejected the payload"))
	}
	f, err := os.OpenFile(e.out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	if len(names) > 0 {
		_, err = f.WriteString(strings.Join(names, "\n") + "\n")
	}
	return err
}

func (e *exporter) Shutdown(context.Context) error {
	if e.out == "" {
		return nil
	}
	f, err := os.OpenFile(e.out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString("#shutdown\n")
	return err
}
