package actor

import (
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var updateAPI = flag.Bool("update-api", false, "rewrite testdata/api.golden from the package's exported identifiers")

// TestExportedAPI pins the package's exported surface, as go doc shows it:
// every exported constant, variable, function, type, method of an exported
// type, field of an exported struct and method of an exported interface.
// An identifier only a sibling package needs belongs in internal/seam, not
// here; adding one to the API is a deliberate change of
// testdata/api.golden (go test ./actor -run TestExportedAPI -update-api).
func TestExportedAPI(t *testing.T) {
	got := exportedAPI(t, ".")
	if *updateAPI {
		if err := os.WriteFile("testdata/api.golden", []byte(strings.Join(got, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile("testdata/api.golden")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(b))
	for _, n := range got {
		if !slices.Contains(want, n) {
			t.Errorf("new exported identifier %s: if applications need it, add it to testdata/api.golden; if only a sibling package does, reach it through internal/seam", n)
		}
	}
	for _, n := range want {
		if !slices.Contains(got, n) {
			t.Errorf("exported identifier %s is gone: remove it from testdata/api.golden", n)
		}
	}
}

// TestExportedAPISeesEveryKind checks exportedAPI itself on a package with
// one exported identifier of each kind and unexported ones that must not
// count, so the pin above cannot pass by missing a kind.
func TestExportedAPISeesEveryKind(t *testing.T) {
	dir := t.TempDir()
	src := `package p
const C, c = 1, 2
var V, v int
func F() {}
func f() {}
type T struct{ X, y int; E; e }
type E struct{}
type e struct{}
func (T) M() {}
func (*T) m() {}
func (e) M() {}
type I interface{ M(); m() }
type G[K any] struct{}
func (g *G[K]) M() {}
type A = T
type (
	B int
	b int
)
`
	if err := os.WriteFile(dir+"/p.go", []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/p_test.go", []byte("package p\nfunc Exported() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := exportedAPI(t, dir)
	want := []string{"A", "B", "C", "E", "F", "G", "G.M", "I", "I.M", "T", "T.E", "T.M", "T.X", "V"}
	if !slices.Equal(got, want) {
		t.Fatalf("exportedAPI = %v, want %v", got, want)
	}
}

// exportedAPI lists the exported identifiers of the non-test files of the
// package in dir, sorted.
func exportedAPI(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var names []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			names = append(names, declNames(d)...)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func declNames(d ast.Decl) []string {
	var names []string
	switch d := d.(type) {
	case *ast.FuncDecl:
		if !d.Name.IsExported() {
			break
		}
		if d.Recv == nil {
			names = append(names, d.Name.Name)
			break
		}
		if recv := recvName(d.Recv.List[0].Type); ast.IsExported(recv) {
			names = append(names, recv+"."+d.Name.Name)
		}
	case *ast.GenDecl:
		for _, s := range d.Specs {
			switch s := s.(type) {
			case *ast.ValueSpec:
				for _, n := range s.Names {
					if n.IsExported() {
						names = append(names, n.Name)
					}
				}
			case *ast.TypeSpec:
				if !s.Name.IsExported() {
					continue
				}
				names = append(names, s.Name.Name)
				if s.Assign.IsValid() {
					continue // an alias: its members belong to the aliased type
				}
				switch st := s.Type.(type) {
				case *ast.StructType:
					names = append(names, memberNames(s.Name.Name, st.Fields)...)
				case *ast.InterfaceType:
					names = append(names, memberNames(s.Name.Name, st.Methods)...)
				}
			}
		}
	}
	return names
}

// memberNames lists the exported fields (embedded ones by their type's
// name) or interface methods of type typ.
func memberNames(typ string, fl *ast.FieldList) []string {
	var names []string
	for _, f := range fl.List {
		if len(f.Names) == 0 {
			if n := recvName(f.Type); ast.IsExported(n) {
				names = append(names, typ+"."+n)
			}
			continue
		}
		for _, n := range f.Names {
			if n.IsExported() {
				names = append(names, typ+"."+n.Name)
			}
		}
	}
	return names
}

// recvName is the name of the type in a receiver or an embedded field:
// T, *T, T[K], pkg.T.
func recvName(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.SelectorExpr:
			return x.Sel.Name
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}
