"""The API's routes, one router per area: searching, images by key, and the server's own state."""
