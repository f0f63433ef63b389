package main

import (
	"net"
	"testing"
)

func TestAllocIPNeverHandsOutTheAddressJustFreed(t *testing.T) {
	_, n, _ := net.ParseCIDR("198.19.0.0/29") // .2 .. .6 usable (.1 is the bridge)
	m := newManager(config{podNet: n}, nil)
	var got []string
	for i := 0; i < 3; i++ {
		a, err := m.allocIP()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.String())
	}
	if got[0] != "198.19.0.2" || got[2] != "198.19.0.4" {
		t.Fatalf("first addresses: %v", got)
	}
	m.forget("", net.ParseIP("198.19.0.3"))
	a, _ := m.allocIP()
	if a.String() != "198.19.0.5" {
		t.Fatalf("after freeing .3 got %s, want .5 (round robin)", a)
	}
	b, _ := m.allocIP()
	c, _ := m.allocIP() // wraps: .2 and .4 are taken, .3 is free again
	if b.String() != "198.19.0.6" || c.String() != "198.19.0.3" {
		t.Fatalf("wrap: got %s %s", b, c)
	}
	if _, err := m.allocIP(); err == nil {
		t.Fatal("a full network must refuse")
	}
}

func TestExpandReplacesKnownVariablesOnly(t *testing.T) {
	vars := map[string]string{"POD_NAME": "p1"}
	if got := expand("--id=$(POD_NAME) $(NOPE) $$(POD_NAME)", vars); got != "--id=p1 $(NOPE) $(POD_NAME)" {
		t.Fatalf("got %q", got)
	}
}
