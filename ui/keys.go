package ui

import "github.com/charmbracelet/bubbles/key"

// keyMap holds every binding; help is generated from it.
type keyMap struct {
	Up, Down, Method, Sort, Filter        key.Binding
	Batching, Test, Load, GPU, Help, Quit key.Binding
	Apply, Save, Close, Next, Prev        key.Binding
	Inc, Dec, Send, Stop                  key.Binding
}

func defaultKeyMap() keyMap {
	return keyMap{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "select up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "select down")),
		Method:   key.NewBinding(key.WithKeys("m"), key.WithHelp("m", "next method")),
		Sort:     key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "sort")),
		Filter:   key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Batching: key.NewBinding(key.WithKeys("b"), key.WithHelp("b", "batching")),
		Test:     key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "test input")),
		Load:     key.NewBinding(key.WithKeys("l"), key.WithHelp("l", "load")),
		GPU:      key.NewBinding(key.WithKeys("g"), key.WithHelp("g", "GPU")),
		Help:     key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:     key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		Apply:    key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "apply / start")),
		Save:     key.NewBinding(key.WithKeys("w"), key.WithHelp("w", "write to config")),
		Close:    key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close panel")),
		Next:     key.NewBinding(key.WithKeys("tab", "down"), key.WithHelp("tab/↓", "next field")),
		Prev:     key.NewBinding(key.WithKeys("shift+tab", "up"), key.WithHelp("shift+tab/↑", "previous field")),
		Inc:      key.NewBinding(key.WithKeys("right", "+"), key.WithHelp("→/+", "increase")),
		Dec:      key.NewBinding(key.WithKeys("left", "-"), key.WithHelp("←/-", "decrease")),
		Send:     key.NewBinding(key.WithKeys("ctrl+s"), key.WithHelp("ctrl+s", "send")),
		Stop:     key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "stop load")),
	}
}

// shortHelp is the always-visible help bar of the main screen.
func (k keyMap) shortHelp() []key.Binding {
	return []key.Binding{k.Up, k.Batching, k.Test, k.Load, k.GPU, k.Sort, k.Filter, k.Help, k.Quit}
}

// fullHelp groups every binding for the ? screen.
func (k keyMap) fullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.Method, k.Sort, k.Filter},
		{k.Batching, k.Test, k.Load, k.GPU, k.Help, k.Quit},
		{k.Next, k.Prev, k.Inc, k.Dec, k.Apply, k.Save, k.Send, k.Stop, k.Close},
	}
}
