package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Changes returns the fields whose values differ between c and next, by
// their path in next (for example "vtep.port", "networks[1].peers"), in
// the order of the file's schema. Networks are matched by VNI, not by
// position, so reordering them is no change; a VNI present in only one of
// the two is reported as "networks[i]: vni V added" (i its position in
// next) or "networks: vni V removed". Defaults count as set, so a key
// removed from the file changes its field only if the default differs. A
// Config's position information (line numbers) is not compared.
func (c *Config) Changes(next *Config) []string {
	var out []string
	a, b := reflect.ValueOf(*c), reflect.ValueOf(*next)
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := yamlName(f)
		if name == "networks" {
			out = append(out, networkChanges(c.Networks, next.Networks)...)
			continue
		}
		out = appendChanges(out, name, a.Field(i), b.Field(i))
	}
	return out
}

func networkChanges(old, next []Network) []string {
	var out []string
	byVNI := make(map[int64]int, len(old))
	for i, n := range old {
		byVNI[n.VNI] = i
	}
	seen := make(map[int64]bool, len(next))
	for i, n := range next {
		seen[n.VNI] = true
		j, ok := byVNI[n.VNI]
		if !ok {
			out = append(out, fmt.Sprintf("networks[%d]: vni %d added", i, n.VNI))
			continue
		}
		out = appendChanges(out, fmt.Sprintf("networks[%d]", i), reflect.ValueOf(old[j]), reflect.ValueOf(n))
	}
	var removed []int64
	for _, n := range old {
		if !seen[n.VNI] {
			removed = append(removed, n.VNI)
		}
	}
	slices.Sort(removed)
	for _, v := range removed {
		out = append(out, fmt.Sprintf("networks: vni %d removed", v))
	}
	return out
}

// appendChanges compares a and b (of one type) field by field where they
// are structs, and as whole values otherwise, appending the paths that
// differ.
func appendChanges(out []string, path string, a, b reflect.Value) []string {
	for a.Kind() == reflect.Pointer {
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				out = append(out, path)
			}
			return out
		}
		a, b = a.Elem(), b.Elem()
	}
	if a.Kind() != reflect.Struct || a.Type().Name() == "Queues" {
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			out = append(out, path)
		}
		return out
	}
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		out = appendChanges(out, path+"."+yamlName(f), a.Field(i), b.Field(i))
	}
	return out
}

// yamlName is a field's key in the file.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}
