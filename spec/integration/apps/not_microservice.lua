return { controllers = {} }
