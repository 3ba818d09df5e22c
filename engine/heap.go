package engine

import "container/heap"

// minHeap is a priority queue of T, least first by less: container/heap's
// algorithm with one implementation of its interface for every element
// type (planned deadlines, due conversations, ready outbox items).
type minHeap[T any] struct {
	items []T
	less  func(a, b T) bool
}

func newMinHeap[T any](less func(a, b T) bool) minHeap[T] { return minHeap[T]{less: less} }

func (h *minHeap[T]) Len() int           { return len(h.items) }
func (h *minHeap[T]) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *minHeap[T]) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *minHeap[T]) Push(x any)         { h.items = append(h.items, x.(T)) }
func (h *minHeap[T]) Pop() any {
	x := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	return x
}

func (h *minHeap[T]) push(x T) { heap.Push(h, x) }
func (h *minHeap[T]) pop() T   { return heap.Pop(h).(T) }

// peek returns the least element, if there is one.
func (h *minHeap[T]) peek() (T, bool) {
	if len(h.items) == 0 {
		var zero T
		return zero, false
	}
	return h.items[0], true
}
