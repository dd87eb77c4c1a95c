package check

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	digest "github.com/opencontainers/go-digest"
)

// offlineResolver answers the linter's look-ups of base images with an
// empty Linux image, so the lint needs no registry.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	return ref, "", []byte(`{"architecture":"amd64","os":"linux","config":{}}`), nil
}

// lintDockerfile runs BuildKit's Dockerfile linter on src, the code
// behind `docker build --check`, offline, with the rules src's check
// directive asks for, and parses src into its stages. It returns the
// stages and every warning or error.
func lintDockerfile(t *testing.T, src string) ([]instructions.Stage, []string) {
	t.Helper()
	dt := []byte(src)
	res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{
		MetaResolver: offlineResolver{},
		SourceMap:    &llb.SourceMap{Filename: "Dockerfile", Data: dt, Definition: &llb.Definition{}},
	})
	if err != nil {
		t.Fatalf("lint: %v", err)
	}
	var problems []string
	for _, w := range res.Warnings {
		line := 0
		if len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		problems = append(problems, fmt.Sprintf("%s: %s (line %d)", w.RuleName, w.Detail, line))
	}
	if res.Error != nil {
		problems = append(problems, "error: "+res.Error.Message)
	}
	ast, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	stages, _, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatalf("instructions: %v", err)
	}
	return stages, problems
}

// dockerfileProblems lints src and checks what the image must be: built
// in one stage and run in another, as an unprivileged numeric user, from
// base images pinned to a version (Go to a patch release of goVersion),
// starting actord in exec form.
func dockerfileProblems(t *testing.T, src, goVersion string) []string {
	stages, problems := lintDockerfile(t, src)
	if d, _, _, _ := parser.ParseDirective("check", []byte(src)); !strings.Contains(d, "experimental=all") || !strings.Contains(d, "error=true") {
		problems = append(problems, fmt.Sprintf("check directive %q: want error=true;experimental=all, so docker build fails on any lint warning", d))
	}
	if len(stages) < 2 {
		return append(problems, fmt.Sprintf("%d stage(s): want a build stage and a run stage", len(stages)))
	}
	for _, st := range stages {
		base := expandArgs(src, st.BaseName)
		if base == "scratch" || strings.Contains(base, "@sha256:") {
			continue // nothing to pull, or pinned by digest
		}
		name, tag, ok := strings.Cut(base[strings.LastIndex(base, "/")+1:], ":")
		if !ok || tag == "" || tag == "latest" {
			problems = append(problems, fmt.Sprintf("stage %q: base %q is not pinned to a version", st.Name, base))
		}
		if name == "golang" && !regexp.MustCompile(`^`+regexp.QuoteMeta(goVersion)+`\.[0-9]+`).MatchString(tag) {
			problems = append(problems, fmt.Sprintf("stage %q builds with %s: want a patch release of go %s (go.mod)", st.Name, base, goVersion))
		}
	}
	user := ""
	var entry []string
	for _, cmd := range stages[len(stages)-1].Commands {
		switch c := cmd.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.EntrypointCommand:
			if !c.PrependShell {
				entry = c.CmdLine
			}
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if !regexp.MustCompile(`^[0-9]+$`).MatchString(uid) || uid == "0" {
		problems = append(problems, fmt.Sprintf("the run stage's USER is %q: want a numeric, non-root uid", user))
	}
	if len(entry) == 0 || !strings.HasSuffix(entry[0], "/actord") {
		problems = append(problems, fmt.Sprintf("ENTRYPOINT %q: want actord in exec form", entry))
	}
	return problems
}

// TestDockerfile: the repository's Dockerfile has no problem.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range dockerfileProblems(t, string(b), goDirective(t, "../../go.mod")) {
		t.Error(p)
	}
}

// TestDockerfileProblemsFound: the checks above do fail on what they must
// catch (a check that cannot fail is no check).
func TestDockerfileProblemsFound(t *testing.T) {
	const ok = "# check=error=true;experimental=all\nFROM golang:1.26.8 AS build\nFROM scratch\nUSER 1\nENTRYPOINT [\"/actord\"]\n"
	if p := dockerfileProblems(t, ok, "1.26"); len(p) != 0 {
		t.Fatalf("a good Dockerfile has problems: %q", p)
	}
	for _, tc := range []struct{ src, want string }{
		{strings.Replace(ok, "FROM scratch", "FROM scratch as run", 1), "FromAsCasing"},
		{strings.Replace(ok, "AS build", "AS Build", 1), "StageNameCasing"},
		{strings.Replace(ok, "USER 1", "USER 1\nCMD echo hi", 1), "JSONArgsRecommended"},
		{strings.Replace(ok, "USER 1", "ENV A b\nUSER 1", 1), "LegacyKeyValueFormat"},
		{strings.Replace(ok, "USER 1", "COPY --from=build $UNDEF /x\nUSER 1", 1), "UndefinedVar"},
		{strings.Replace(ok, "USER 1", "ENV API_TOKEN=x\nUSER 1", 1), "SecretsUsedInArgOrEnv"},
		{strings.Replace(ok, "FROM golang", "# a comment\nARG V=1\nFROM golang", 1), "InvalidDefinitionDescription"},
		{strings.Replace(ok, "experimental=all", "experimental=none", 1), "check directive"},
		{strings.Replace(ok, "FROM scratch\n", "", 1), "want a build stage and a run stage"},
		{strings.Replace(ok, "golang:1.26.8", "golang:latest", 1), "not pinned"},
		{strings.Replace(ok, "golang:1.26.8", "golang", 1), "not pinned"},
		{strings.Replace(ok, "golang:1.26.8", "golang:1.25.3", 1), "patch release of go 1.26"},
		{strings.Replace(ok, "scratch", "alpine", 1), "not pinned"},
		{strings.Replace(ok, "USER 1\n", "", 1), `USER is ""`},
		{strings.Replace(ok, "USER 1", "USER root", 1), `USER is "root"`},
		{strings.Replace(ok, "USER 1", "USER 0:0", 1), `USER is "0:0"`},
		{strings.Replace(ok, `ENTRYPOINT ["/actord"]`, "ENTRYPOINT /actord", 1), "exec form"},
	} {
		got := strings.Join(dockerfileProblems(t, tc.src, "1.26"), "\n")
		if !strings.Contains(got, tc.want) {
			t.Errorf("%q: problems %q, want %q", tc.src, got, tc.want)
		}
	}
}

// goDirective reads the go line of a go.mod ("1.26").
func goDirective(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go ([0-9]+\.[0-9]+)`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no go line", path)
	}
	return string(m[1])
}

// expandArgs replaces ${NAME} in s with the default of ARG NAME in src.
func expandArgs(src, s string) string {
	return regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllStringFunc(s, func(v string) string {
		name := v[2 : len(v)-1]
		m := regexp.MustCompile(`(?m)^ARG ` + name + `=(\S+)`).FindStringSubmatch(src)
		if m == nil {
			return v
		}
		return m[1]
	})
}
