"""The starter taxonomy of the knowledge system: domain -> topic -> concepts (layers 1-3).

Written for this project: 28 domains of visual, diagram-based reasoning where drawing on the
image (auxiliary lines, marks, crops, highlights) helps. The evolve step grows it below and
beside these nodes (layers up to :data:`~vthinker_plugins.flywheel.knowledge.MAX_LAYER`).
"""

from __future__ import annotations

SEED_TAXONOMY: dict[str, dict[str, list[str]]] = {
    "plane geometry": {
        "triangles": ["Pythagorean theorem", "altitude of a triangle", "angle sum of a triangle",
                      "similar triangles"],
        "quadrilaterals": ["parallelogram properties", "diagonals of a rectangle", "trapezoid midline"],
        "circles": ["inscribed angle", "tangent to a circle", "chord length"],
        "polygons": ["interior angles of a polygon", "regular polygon symmetry"],
    },
    "solid geometry": {
        "prisms and cylinders": ["volume of a prism", "lateral surface of a cylinder"],
        "pyramids and cones": ["slant height of a cone", "volume of a pyramid"],
        "nets and views": ["net of a cube", "three-view drawing", "counting cubes in a stack"],
    },
    "analytic geometry": {
        "lines": ["slope of a line", "distance between two points", "midpoint formula"],
        "conic sections": ["circle equation", "parabola vertex", "ellipse axes"],
        "coordinate transformations": ["reflection across an axis", "translation of a figure"],
    },
    "functions": {
        "linear functions": ["reading values from a line graph", "intercepts of a line"],
        "quadratic functions": ["vertex of a parabola", "roots from a graph"],
        "function behaviour": ["increasing and decreasing intervals", "maximum on an interval",
                               "intersection of two graphs"],
    },
    "trigonometry": {
        "right-triangle trigonometry": ["sine and cosine ratios", "angle of elevation"],
        "unit circle": ["reference angle", "coordinates on the unit circle"],
        "trigonometric graphs": ["period of a sine curve", "amplitude from a graph"],
    },
    "vectors": {
        "vector operations": ["vector addition by parallelogram", "scalar multiple of a vector"],
        "vector geometry": ["dot product and perpendicularity", "projection of a vector"],
    },
    "transformational geometry": {
        "symmetry": ["line of symmetry", "rotational symmetry order"],
        "isometries": ["rotation about a point", "glide reflection"],
        "dilations": ["scale factor of a dilation", "centre of dilation"],
    },
    "measurement": {
        "length and perimeter": ["perimeter of a composite figure", "reading a ruler"],
        "area": ["area of a triangle on a grid", "area by decomposition", "shaded area"],
        "angles": ["measuring an angle with a protractor", "complementary and supplementary angles"],
    },
    "arithmetic and number": {
        "number line": ["locating fractions on a number line", "distance on a number line"],
        "fractions": ["fraction of a shape shaded", "equivalent fractions with area models"],
        "patterns": ["arithmetic sequence from a picture", "growing dot patterns"],
    },
    "algebra": {
        "equations": ["balance-scale equations", "solving a linear equation from a diagram"],
        "inequalities": ["graphing an inequality on a number line", "feasible region of two inequalities"],
        "systems": ["intersection point of two lines", "system from a word picture"],
    },
    "statistics charts": {
        "bar charts": ["reading the tallest bar", "difference between bars", "stacked bar totals"],
        "line charts": ["trend between two years", "largest increase between points"],
        "pie charts": ["sector angle from a percentage", "comparing sectors"],
    },
    "data analysis": {
        "measures of centre": ["mean from a dot plot", "median from a frequency table"],
        "spread": ["range of a data set", "interquartile range from a box plot"],
        "scatter plots": ["line of best fit", "outlier in a scatter plot"],
    },
    "probability": {
        "spinners and dice": ["probability from a spinner", "sum of two dice grid"],
        "geometric probability": ["probability of landing in a region", "ratio of areas"],
        "tree diagrams": ["two-stage experiment", "counting outcomes in a tree"],
    },
    "combinatorics": {
        "counting paths": ["lattice paths on a grid", "paths avoiding a blocked cell"],
        "counting figures": ["counting triangles in a figure", "counting rectangles in a grid"],
        "arrangements": ["colouring regions with constraints", "seating arrangements around a table"],
    },
    "graph theory": {
        "degrees": ["degree of a vertex", "handshake lemma"],
        "paths and cycles": ["shortest path in a weighted graph", "Euler path", "Hamiltonian cycle"],
        "trees": ["spanning tree", "counting leaves of a tree"],
    },
    "logic puzzles": {
        "grid puzzles": ["magic square", "sudoku-style missing number", "row and column sums"],
        "spatial puzzles": ["matchstick puzzles", "folding a paper strip", "mirror images"],
        "sequences of figures": ["next figure in a sequence", "odd one out"],
    },
    "mazes and routing": {
        "mazes": ["path through a maze", "dead ends of a maze"],
        "routing": ["route on a city grid", "travelling between stations on a map"],
    },
    "physics diagrams": {
        "mechanics": ["free-body diagram forces", "inclined plane components", "lever balance"],
        "optics": ["reflection angle in a mirror", "refraction at an interface", "image in a plane mirror"],
        "kinematics": ["distance from a velocity-time graph", "slope of a position-time graph"],
    },
    "electric circuits": {
        "circuit diagrams": ["series resistance", "parallel resistance", "current in a branch"],
        "circuit reading": ["identifying a closed loop", "which bulb lights"],
    },
    "chemistry diagrams": {
        "molecular structures": ["counting bonds in a structure", "identifying a functional group"],
        "laboratory charts": ["reading a titration curve", "solubility curve at a temperature"],
    },
    "biology diagrams": {
        "anatomy and cells": ["labelling parts of a cell", "following a flow in a diagram"],
        "ecology": ["food web links", "population graph over time"],
    },
    "geography and maps": {
        "map reading": ["map scale distance", "compass direction between places"],
        "contour maps": ["steepest slope on a contour map", "elevation at a point"],
    },
    "clocks and calendars": {
        "clocks": ["angle between clock hands", "elapsed time on a clock face"],
        "calendars": ["day of the week from a calendar", "counting days between dates"],
    },
    "tables and schedules": {
        "tables": ["reading a two-way table", "lookup in a timetable"],
        "schedules": ["overlapping time intervals", "Gantt chart durations"],
    },
    "flowcharts and algorithms": {
        "flowcharts": ["tracing a flowchart", "loop count in a flowchart"],
        "algorithms": ["sorting steps drawn as bars", "binary search on a sorted list"],
    },
    "spatial reasoning": {
        "mental rotation": ["rotated copies of a shape", "cube faces after rolling"],
        "perspective": ["counting visible faces", "top view of a building"],
    },
    "geometric constructions": {
        "ruler and compass": ["perpendicular bisector", "angle bisector", "circumcentre of a triangle"],
        "loci": ["points equidistant from two points", "locus at a fixed distance from a line"],
    },
    "charts of functions and rates": {
        "rates": ["speed from a distance-time chart", "rate of change between two points"],
        "piecewise graphs": ["reading a step function", "total from a piecewise graph"],
    },
}
