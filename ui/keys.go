package ui

import "github.com/charmbracelet/bubbles/key"

// Each component has its own key map, with DefaultKeyMap-style
// constructors, matched with key.Matches and rendered into the footer and
// the help panel from the bindings: no raw key strings anywhere else, and
// no two bindings of one map share a key.

// mainKeyMap is the main screen's: the runners table and the panels it opens.
type mainKeyMap struct {
	Up, Down, Method, Sort, Filter          key.Binding
	Batching, Test, Load, APIs, Events, GPU key.Binding
	Help, Quit, ForceQuit                   key.Binding
}

func defaultMainKeyMap() mainKeyMap {
	return mainKeyMap{
		Up:        key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:      key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Method:    key.NewBinding(key.WithKeys("m"), key.WithHelp("m", "next method")),
		Sort:      key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "sort")),
		Filter:    key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Batching:  key.NewBinding(key.WithKeys("b"), key.WithHelp("b", "batching")),
		Test:      key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "test")),
		Load:      key.NewBinding(key.WithKeys("l"), key.WithHelp("l", "load")),
		APIs:      key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "APIs")),
		Events:    key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "events")),
		GPU:       key.NewBinding(key.WithKeys("g"), key.WithHelp("g", "GPU")),
		Help:      key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:      key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		ForceQuit: key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit from anywhere")),
	}
}

func (k mainKeyMap) ShortHelp() []key.Binding {
	return []key.Binding{selectBinding, k.Batching, k.Test, k.Load, k.APIs, k.Events, k.Help, k.Quit, k.Sort, k.Filter, k.GPU, k.Method}
}

func (k mainKeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.Method, k.Sort, k.Filter},
		{k.Batching, k.Test, k.Load, k.APIs, k.Events, k.GPU, k.Help, k.Quit, k.ForceQuit},
	}
}

// filterKeyMap is the runners filter's while it is typed.
type filterKeyMap struct{ Accept, Clear key.Binding }

func defaultFilterKeyMap() filterKeyMap {
	return filterKeyMap{
		Accept: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "keep filter")),
		Clear:  key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),
	}
}

func (k filterKeyMap) ShortHelp() []key.Binding  { return []key.Binding{k.Accept, k.Clear} }
func (k filterKeyMap) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// formKeyMap is the batching panel's.
type formKeyMap struct {
	Next, Prev, Inc, Dec, Policy, Apply, Save, Close key.Binding
}

func defaultFormKeyMap() formKeyMap {
	return formKeyMap{
		Next:   key.NewBinding(key.WithKeys("down", "tab"), key.WithHelp("↓", "next")),
		Prev:   key.NewBinding(key.WithKeys("up", "shift+tab"), key.WithHelp("↑", "prev")),
		Inc:    key.NewBinding(key.WithKeys("right", "+"), key.WithHelp("→", "more")),
		Dec:    key.NewBinding(key.WithKeys("left", "-"), key.WithHelp("←", "less")),
		Policy: key.NewBinding(key.WithKeys("a", "f", "n"), key.WithHelp("a/f/n", "policy")),
		Apply:  key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "apply")),
		Save:   key.NewBinding(key.WithKeys("w"), key.WithHelp("w", "save")),
		Close:  key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close")),
	}
}

func (k formKeyMap) ShortHelp() []key.Binding {
	return []key.Binding{fieldsBinding, changeBinding, digitsBinding, k.Apply, k.Save, k.Close, k.Policy}
}

func (k formKeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Next, k.Prev, k.Inc, k.Dec, digitsBinding}, {k.Policy, k.Apply, k.Save, k.Close}}
}

// digitsBinding documents typing into a numeric field; the fields read
// digits themselves (numField), so it is help only.
var digitsBinding = key.NewBinding(key.WithKeys("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"), key.WithHelp("0-9", "type"))

// Help-only pairs, so a footer of 80 columns holds a panel's keys.
var (
	fieldsBinding = key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑↓", "field"))
	changeBinding = key.NewBinding(key.WithKeys("left", "right"), key.WithHelp("←→", "change"))
	selectBinding = key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑↓", "select"))
)

// loadKeyMap is the load panel's.
type loadKeyMap struct {
	Next, Prev, Inc, Dec, Start, Stop, Close key.Binding
}

func defaultLoadKeyMap() loadKeyMap {
	return loadKeyMap{
		Next:  key.NewBinding(key.WithKeys("down", "tab"), key.WithHelp("↓", "next")),
		Prev:  key.NewBinding(key.WithKeys("up", "shift+tab"), key.WithHelp("↑", "prev")),
		Inc:   key.NewBinding(key.WithKeys("right", "+"), key.WithHelp("→", "more")),
		Dec:   key.NewBinding(key.WithKeys("left", "-"), key.WithHelp("←", "less")),
		Start: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "start")),
		Stop:  key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "stop")),
		Close: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close")),
	}
}

func (k loadKeyMap) ShortHelp() []key.Binding {
	return []key.Binding{fieldsBinding, changeBinding, digitsBinding, k.Start, k.Stop, k.Close}
}

func (k loadKeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Next, k.Prev, k.Inc, k.Dec, digitsBinding}, {k.Start, k.Stop, k.Close}}
}

// testKeyMap is the test input's; everything else is typed into the body.
type testKeyMap struct {
	Send, NextTarget, PrevTarget, ResultDown, ResultUp, Close key.Binding
}

func defaultTestKeyMap() testKeyMap {
	return testKeyMap{
		Send:       key.NewBinding(key.WithKeys("ctrl+s"), key.WithHelp("ctrl+s", "send")),
		NextTarget: key.NewBinding(key.WithKeys("ctrl+n"), key.WithHelp("ctrl+n", "next target")),
		PrevTarget: key.NewBinding(key.WithKeys("ctrl+p"), key.WithHelp("ctrl+p", "prev target")),
		ResultDown: key.NewBinding(key.WithKeys("pgdown"), key.WithHelp("pgdn", "scroll result")),
		ResultUp:   key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup", "scroll back")),
		Close:      key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close")),
	}
}

func (k testKeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Send, k.NextTarget, k.ResultDown, k.Close, k.PrevTarget, k.ResultUp}
}

func (k testKeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Send, k.NextTarget, k.PrevTarget}, {k.ResultDown, k.ResultUp, k.Close}}
}

// apisKeyMap is the APIs view's: a list of APIs, the selected one sent a
// test input or a load.
type apisKeyMap struct {
	Up, Down, PageUp, PageDown, Test, Load, Close key.Binding
}

func defaultAPIsKeyMap() apisKeyMap {
	l := defaultListKeyMap()
	return apisKeyMap{Up: l.Up, Down: l.Down, PageUp: l.PageUp, PageDown: l.PageDown,
		Test:  key.NewBinding(key.WithKeys("enter", "t"), key.WithHelp("enter/t", "test input to it")),
		Load:  key.NewBinding(key.WithKeys("l"), key.WithHelp("l", "load on it")),
		Close: key.NewBinding(key.WithKeys("esc", "a"), key.WithHelp("esc", "close")),
	}
}

func (k apisKeyMap) ShortHelp() []key.Binding {
	return []key.Binding{selectBinding, k.Test, k.Load, k.Close, k.PageDown, k.PageUp}
}

func (k apisKeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown}, {k.Test, k.Load, k.Close}}
}

// listKeyMap is the events pane's and the help panel's: a list that
// scrolls, an item that opens.
type listKeyMap struct {
	Up, Down, PageUp, PageDown, Open, Close key.Binding
}

func defaultListKeyMap() listKeyMap {
	return listKeyMap{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", " "), key.WithHelp("pgdn", "page down")),
		Open:     key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open in full")),
		Close:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
	}
}

func (k listKeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.Open, k.Close, k.PageDown, k.PageUp}
}

func (k listKeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown}, {k.Open, k.Close}}
}

// scrollKeyMap is a panel that only scrolls and closes (help, GPU).
type scrollKeyMap struct{ Up, Down, PageUp, PageDown, Close key.Binding }

func defaultScrollKeyMap(closeKeys ...string) scrollKeyMap {
	l := defaultListKeyMap()
	return scrollKeyMap{Up: l.Up, Down: l.Down, PageUp: l.PageUp, PageDown: l.PageDown,
		Close: key.NewBinding(key.WithKeys(append([]string{"esc"}, closeKeys...)...), key.WithHelp("esc", "close"))}
}

func (k scrollKeyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Down, k.Up, k.PageDown, k.PageUp, k.Close}
}

func (k scrollKeyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{{k.Up, k.Down, k.PageUp, k.PageDown}, {k.Close}}
}
