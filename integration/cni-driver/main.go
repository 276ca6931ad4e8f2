// Command cni-driver calls a CNI plugin the way container runtimes and Multus do: through
// libcni, the reference runtime library (github.com/containernetworking/cni/libcni).
//
//	cni-driver add|del|check|status|gc|version --conf FILE [--netns PATH] [--container ID]
//	    [--ifname eth1] [--args 'K=V;K=V'] [--bin-dir DIR] [--cache-dir DIR]
//	    [--valid 'ID/IFNAME,ID/IFNAME'] [--raw] [--plugin-stdout FILE] [--timeout 60s]
//
// ADD, CHECK and DEL of configurations up to spec 1.0.0 go through libcni's
// AddNetworkList/CheckNetworkList/DelNetworkList, result cache and result parsing included.
// This libcni predates spec 1.1.0, so STATUS, GC and every command of a 1.1.0 configuration go
// through libcni's exec layer (invoke.RawExec) with what libcni 1.2 would inject: the cached
// ADD result as prevResult for CHECK and DEL, and the valid attachments for GC. --raw sends
// the file byte for byte with no parsing at all, to test how the plugin handles bad input.
//
// On success the ADD result is printed on stdout (as libcni parsed it, when libcni ran) and
// the exit code is 0. On failure the error is printed as {"code","msg","details"} and the exit
// code is 1; errors raised by the driver or libcni itself, not by a plugin, have code 0 unless
// libcni gave them a CNI code. --plugin-stdout saves the plugin's own stdout byte for byte.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

type options struct {
	command      string
	conf         string
	netns        string
	container    string
	ifname       string
	args         string
	binDir       string
	cacheDir     string
	valid        string
	raw          bool
	pluginStdout string
	timeout      time.Duration
}

// capture is libcni's exec with the plugin's stdout kept.
type capture struct {
	invoke.RawExec
	versions version.PluginDecoder
	stdout   []byte
}

func (c *capture) ExecPlugin(ctx context.Context, path string, stdin []byte, env []string) ([]byte, error) {
	out, err := c.RawExec.ExecPlugin(ctx, path, stdin, env)
	c.stdout = out
	return out, err
}

func (c *capture) Decode(b []byte) (version.PluginInfo, error) {
	return c.versions.Decode(b)
}

func main() {
	opts, err := parse(os.Args[1:])
	if err != nil {
		fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout)
	defer cancel()
	exec := &capture{RawExec: invoke.RawExec{Stderr: os.Stderr}}
	out, err := run(ctx, opts, exec)
	if opts.pluginStdout != "" {
		if werr := os.WriteFile(opts.pluginStdout, exec.stdout, 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fail(err)
	}
	if len(out) > 0 {
		fmt.Println(string(out))
	}
}

func parse(argv []string) (*options, error) {
	if len(argv) == 0 {
		return nil, errors.New("usage: cni-driver add|del|check|status|gc|version --conf FILE ...")
	}
	o := &options{command: argv[0]}
	fs := flag.NewFlagSet("cni-driver", flag.ContinueOnError)
	fs.StringVar(&o.conf, "conf", "", "network configuration (or configuration list) file")
	fs.StringVar(&o.netns, "netns", "", "CNI_NETNS")
	fs.StringVar(&o.container, "container", "", "CNI_CONTAINERID")
	fs.StringVar(&o.ifname, "ifname", "eth1", "CNI_IFNAME")
	fs.StringVar(&o.args, "args", "", "CNI_ARGS, K=V;K=V")
	fs.StringVar(&o.binDir, "bin-dir", "/opt/cni/bin", "where plugins are (CNI_PATH)")
	fs.StringVar(&o.cacheDir, "cache-dir", "/var/lib/cni", "libcni's result cache")
	fs.StringVar(&o.valid, "valid", "", "GC: attachments to keep, ID/IFNAME,ID/IFNAME")
	fs.BoolVar(&o.raw, "raw", false, "send the file byte for byte, bypassing libcni's parsing")
	fs.StringVar(&o.pluginStdout, "plugin-stdout", "", "save the plugin's stdout to this file")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up after this long")
	if err := fs.Parse(argv[1:]); err != nil {
		return nil, err
	}
	if o.conf == "" {
		return nil, errors.New("--conf is required")
	}
	return o, nil
}

func run(ctx context.Context, o *options, exec *capture) ([]byte, error) {
	bytes, err := os.ReadFile(o.conf)
	if err != nil {
		return nil, err
	}
	if o.raw {
		return execRaw(ctx, o, exec, "ovswire-cni", bytes)
	}
	list, err := confList(bytes)
	if err != nil {
		return nil, err
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{o.binDir}, o.cacheDir, exec)
	rt := &libcni.RuntimeConf{
		ContainerID: o.container,
		NetNS:       o.netns,
		IfName:      o.ifname,
		Args:        pairs(o.args),
	}
	libcniKnows := list.CNIVersion != "1.1.0"
	switch {
	case o.command == "version":
		info, err := cni.GetVersionInfo(ctx, list.Plugins[0].Network.Type)
		if err != nil {
			return nil, err
		}
		return json.Marshal(map[string]interface{}{"supportedVersions": info.SupportedVersions()})
	case o.command == "add" && libcniKnows:
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return nil, err
		}
		return json.Marshal(result)
	case o.command == "check" && libcniKnows:
		return nil, cni.CheckNetworkList(ctx, list, rt)
	case o.command == "del" && libcniKnows:
		return nil, cni.DelNetworkList(ctx, list, rt)
	case o.command == "add" || o.command == "check" || o.command == "del" ||
		o.command == "status" || o.command == "gc":
		return execSpec11(ctx, o, exec, list)
	default:
		return nil, fmt.Errorf("unknown command %q", o.command)
	}
}

// confList reads a configuration list, or a single configuration as a list of one.
func confList(bytes []byte) (*libcni.NetworkConfigList, error) {
	var probe map[string]interface{}
	if err := json.Unmarshal(bytes, &probe); err != nil {
		return nil, fmt.Errorf("configuration is not JSON: %w", err)
	}
	if _, ok := probe["plugins"]; ok {
		return libcni.ConfListFromBytes(bytes)
	}
	conf, err := libcni.ConfFromBytes(bytes)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromConf(conf)
}

// execSpec11 runs one command the way libcni 1.2 does for spec 1.1.0, through libcni's exec.
func execSpec11(ctx context.Context, o *options, exec *capture, list *libcni.NetworkConfigList) ([]byte, error) {
	if len(list.Plugins) != 1 {
		return nil, fmt.Errorf("%s and spec 1.1.0 want one plugin, found %d", o.command, len(list.Plugins))
	}
	var conf map[string]interface{}
	if err := json.Unmarshal(list.Plugins[0].Bytes, &conf); err != nil {
		return nil, err
	}
	conf["name"] = list.Name
	conf["cniVersion"] = list.CNIVersion
	cache := filepath.Join(o.cacheDir, "spec11", fmt.Sprintf("%s-%s-%s", list.Name, o.container, o.ifname))
	switch o.command {
	case "check", "del":
		if cached, err := os.ReadFile(cache); err == nil {
			var prev map[string]interface{}
			if err := json.Unmarshal(cached, &prev); err != nil {
				return nil, err
			}
			conf["prevResult"] = prev
		} else if o.command == "check" {
			return nil, fmt.Errorf("no cached result for CHECK: %w", err)
		}
	case "gc":
		valid := []map[string]string{}
		for _, a := range strings.Split(o.valid, ",") {
			if a == "" {
				continue
			}
			id, ifname, ok := strings.Cut(a, "/")
			if !ok {
				return nil, fmt.Errorf("--valid wants ID/IFNAME, got %q", a)
			}
			valid = append(valid, map[string]string{"containerID": id, "ifname": ifname})
		}
		conf["cni.dev/valid-attachments"] = valid
		conf["cni.dev/attachments"] = valid
	}
	bytes, err := json.Marshal(conf)
	if err != nil {
		return nil, err
	}
	out, err := execRaw(ctx, o, exec, list.Plugins[0].Network.Type, bytes)
	if err != nil {
		return nil, err
	}
	switch o.command {
	case "add":
		var result map[string]interface{}
		if err := json.Unmarshal(out, &result); err != nil {
			return nil, fmt.Errorf("ADD result is not a JSON object: %w", err)
		}
		if result["cniVersion"] != list.CNIVersion {
			return nil, fmt.Errorf("ADD result has cniVersion %v, want %s", result["cniVersion"], list.CNIVersion)
		}
		if err := os.MkdirAll(filepath.Dir(cache), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(cache, out, 0o600); err != nil {
			return nil, err
		}
	case "del":
		_ = os.Remove(cache)
	}
	return out, nil
}

func execRaw(ctx context.Context, o *options, exec *capture, plugin string, stdin []byte) ([]byte, error) {
	path, err := invoke.FindInPath(plugin, []string{o.binDir})
	if err != nil {
		return nil, err
	}
	args := &invoke.Args{
		Command:       strings.ToUpper(o.command),
		ContainerID:   o.container,
		NetNS:         o.netns,
		PluginArgsStr: o.args,
		IfName:        o.ifname,
		Path:          o.binDir,
	}
	out, err := exec.ExecPlugin(ctx, path, stdin, args.AsEnv())
	return out, err
}

func pairs(s string) [][2]string {
	var out [][2]string
	for _, kv := range strings.Split(s, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

func fail(err error) {
	e := &types.Error{Msg: err.Error()}
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		e = cniErr
	}
	b, _ := json.Marshal(map[string]interface{}{"code": e.Code, "msg": e.Msg, "details": e.Details})
	fmt.Println(string(b))
	os.Exit(1)
}
