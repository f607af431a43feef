// Prints the greeting from Node.
console.log("Hello, world! (node)");
