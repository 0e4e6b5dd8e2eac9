// Draws every `.path-graph` and `.map-graph` element's data-graph ({nodes: [{id, label, kind}],
// edges: [{source, target, label, weight}]}) with cytoscape.js; again after htmx swaps content in.
function draw(root) {
  root.querySelectorAll(".path-graph, .map-graph").forEach(function (element) {
    if (element.dataset.drawn) return;
    const graph = JSON.parse(element.dataset.graph);
    const map = element.classList.contains("map-graph");
    cytoscape({
      container: element,
      elements: graph.nodes.map(function (n) { return {data: n}; })
        .concat(graph.edges.map(function (e) { return {data: e}; })),
      // A path reads left to right, one node after the other; the map is laid out by force.
      layout: map ? {name: "cose", animate: false}
                  : {name: "preset", fit: true, padding: 24,
                     positions: function (node) { return {x: 170 * graph.nodes.findIndex(function (n) { return n.id === node.id(); }), y: 0}; }},
      userZoomingEnabled: map,
      style: [
        {selector: "node", style: {"label": "data(label)", "font-size": 9, "width": 14, "height": 14,
                                   "text-wrap": "ellipsis", "text-max-width": 120, "text-valign": "bottom", "text-margin-y": 3,
                                   "background-color": "#6b7a8f"}},
        {selector: "node[kind = 'Product']", style: {"background-color": "#2f6f4f"}},
        {selector: "node[kind = 'Look']", style: {"background-color": "#a0522d", "shape": "round-rectangle"}},
        {selector: "node[kind = 'Attribute'], node[kind = 'Category']", style: {"background-color": "#4a6fa5", "shape": "diamond"}},
        {selector: "node[kind = 'Rule']", style: {"background-color": "#b22222", "shape": "star"}},
        {selector: "edge", style: {"label": "data(label)", "font-size": 7, "text-margin-y": -7, "width": "mapData(weight, 1, 20, 1, 6)",
                                   "curve-style": "bezier", "target-arrow-shape": map ? "none" : "triangle"}},
      ],
    });
    element.dataset.drawn = "1";
  });
}
document.addEventListener("DOMContentLoaded", function () { draw(document); });
document.addEventListener("htmx:afterSwap", function (event) { draw(event.target); });
